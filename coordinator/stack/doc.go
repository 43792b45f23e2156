// Package stack resolves a Docker Swarm stack (the services labelled
// com.docker.stack.namespace=<stack>) into the containers a snapshot covers: service,
// slot, task, node, container id, image, networks and IPs. It also says up front what
// cannot be preserved, with the fix: networks without a fixed subnet, services in VIP
// endpoint mode, bind mounts that must exist on a target node, volumes, healthchecks,
// secrets and configs, services running as another user than root (CRIU needs
// CAP_SYS_RESOURCE for them), and the few service settings an exact restore does not
// carry (ingress-published ports, stop grace period).
//
// Build is pure (Docker API types in, Stack out) and tested with fixtures; Docker is
// the I/O side that asks a swarm manager's API for those types.
package stack

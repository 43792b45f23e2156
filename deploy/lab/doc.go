// Package lab runs a real multi-node Docker Swarm on one machine, for development, tests
// and demos (in the spirit of kind, "Kubernetes in Docker").
//
// Each lab node is its own dockerd in its own network namespace and UTS namespace
// (hostname NAME-1, NAME-2, ...), with its own data root, exec root and unix socket. The
// nodes are wired to one Linux bridge that lives in a private "switch" namespace, so the
// host's own network namespace and firewall are never touched and nothing leaves the lab:
//
//	         netns NAME-sw
//	    +---------br0---------+
//	    |          |          |          veth pairs, one per node
//	  eth0       eth0       eth0
//	netns NAME-1 NAME-2    NAME-3        10.231.K.11, .12, .13 /24
//	dockerd    dockerd    dockerd        swarm: NAME-1 manager, others workers
//
// Everything a lab creates is named after the lab, so Down finds and removes it even when
// Up crashed half-way and wrote no state: namespaces NAME-*, the directories
// /run/swarmckpt/NAME and /var/lib/swarmckpt/NAME, every process whose command line names
// those directories, every mount below them, and every container runc knows in the
// nodes' runc roots.
//
// The pure parts (names, addresses, daemon configuration, which lab subnet is free) are in
// plan.go and are unit tested; the rest drives ip(8), nsenter(1), dockerd and the Docker
// API, and is covered by the integration test in lab_integration_test.go.
package lab

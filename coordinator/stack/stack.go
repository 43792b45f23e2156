package stack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// NamespaceLabel marks the services, networks and containers of a stack.
const NamespaceLabel = "com.docker.stack.namespace"

// Sentinel errors.
var (
	ErrNotFound = errors.New("stack: not found")
	ErrNotReady = errors.New("stack: not every task is running")
)

// Stack is a resolved stack.
type Stack struct {
	Name       string      `json:"name"`
	Containers []Container `json:"containers"`
	Warnings   []Warning   `json:"warnings,omitempty"`
}

// Container is one running task's container.
type Container struct {
	Service     string   `json:"service"`
	ServiceID   string   `json:"service_id"`
	Slot        int      `json:"slot"`
	TaskID      string   `json:"task_id"`
	NodeID      string   `json:"node_id"`
	Node        string   `json:"node"`
	ContainerID string   `json:"container_id"`
	Image       string   `json:"image"`
	IPs         []string `json:"ips,omitempty"`
	Networks    []string `json:"networks,omitempty"`
	// Aliases are the DNS aliases swarm gives the task on each network (network name ->
	// aliases, e.g. the compose service's short name): a restored container must carry
	// them, and a worker node cannot read them from the container.
	Aliases    map[string][]string `json:"aliases,omitempty"`
	BindMounts []string            `json:"bind_mounts,omitempty"`
	// State is set only for a standalone container of an exact restore (BuildWith):
	// Docker's state of it ("running", "exited", ...).
	State string `json:"state,omitempty"`
}

// Key is SERVICE.SLOT.
func (c Container) Key() string { return fmt.Sprintf("%s.%d", c.Service, c.Slot) }

// Nodes returns the distinct nodes of the stack, sorted.
func (s *Stack) Nodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range s.Containers {
		if !seen[c.Node] {
			seen[c.Node] = true
			out = append(out, c.Node)
		}
	}
	sort.Strings(out)
	return out
}

// Warning is something a snapshot or restore cannot preserve, with the fix.
type Warning struct {
	Object  string `json:"object"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s; fix: %s", w.Object, w.Problem, w.Fix) }

// Build resolves stack from what a swarm manager reports: the stack's services, their
// tasks, and the swarm's nodes. Only tasks whose desired and current state is running
// count; a service with fewer running tasks than its desired replicas is an error
// (ErrNotReady) since a snapshot of half a stack is not what the user asked for.
func Build(name string, services []swarm.Service, tasks []swarm.Task, nodes []swarm.Node) (*Stack, error) {
	return BuildWith(name, services, tasks, nodes, nil)
}

// BuildWith is Build counting standalone, the standalone containers that exact-mode
// restores created for the stack's services (only the running ones: State "" or
// "running"; one that stopped is named in a warning when nothing else runs its slot) (docs/restore.md "Restoring a
// restored stack"), each as the SERVICE.SLOT it was restored as: after such a restore
// the services are at 0 replicas and these containers are the stack. A standalone
// container whose service is gone from the stack, or whose slot a running task holds,
// is left out with a warning; two standalone containers of one slot are an error (the
// snapshot could not tell which one is the stack's).
func BuildWith(name string, services []swarm.Service, tasks []swarm.Task, nodes []swarm.Node, standalone []Container) (*Stack, error) {
	if len(services) == 0 {
		return nil, fmt.Errorf("stack %q: %w: no service carries the label %s=%s (deploy it with 'docker stack deploy -c FILE %s')",
			name, ErrNotFound, NamespaceLabel, name, name)
	}
	nodeName := map[string]string{}
	for _, n := range nodes {
		h := n.Description.Hostname
		if h == "" {
			h = n.ID
		}
		nodeName[n.ID] = h
	}
	svcByID := map[string]swarm.Service{}
	for _, s := range services {
		svcByID[s.ID] = s
	}
	st := &Stack{Name: name}
	running := map[string]int{}
	netWarned := map[string]bool{}
	for _, t := range tasks {
		s, ok := svcByID[t.ServiceID]
		if !ok || t.DesiredState != swarm.TaskStateRunning || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		if t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == "" {
			continue
		}
		running[s.ID]++
		c := Container{Service: s.Spec.Name, ServiceID: s.ID, Slot: t.Slot, TaskID: t.ID, NodeID: t.NodeID,
			Node: nodeName[t.NodeID], ContainerID: t.Status.ContainerStatus.ContainerID}
		if c.Node == "" {
			c.Node = t.NodeID
		}
		if cs := t.Spec.ContainerSpec; cs != nil {
			c.Image = stripDigest(cs.Image)
			for _, m := range cs.Mounts {
				switch m.Type {
				case mount.TypeBind:
					c.BindMounts = append(c.BindMounts, m.Source)
				case mount.TypeVolume:
					// CRIU dumps processes and tmpfs mounts, not volumes: say so up front.
					vol := m.Source
					if vol == "" {
						vol = "(anonymous)"
					}
					st.Warnings = append(st.Warnings, Warning{Object: "container " + c.Key(),
						Problem: fmt.Sprintf("mounts volume %s at %s: its content is not in the snapshot (unless it is taken with --carry-volumes, for a local volume), and a restore on another node uses that node's volume of the same name (created empty if missing), so files the process wrote there are gone or older", vol, m.Target),
						Fix:     "snapshot or migrate with --carry-volumes (a local volume's content then goes with it), keep state that must survive in memory or on a tmpfs mount (both are in the snapshot), use a volume driver whose data every node sees, or restore on the same node"})
				}
			}
		}
		if c.Slot == 0 { // global services have no slot: use the node as the slot's identity
			c.Slot = 1
		}
		for _, na := range t.NetworksAttachments {
			nname := na.Network.Spec.Name
			if na.Network.Spec.Ingress {
				continue
			}
			c.Networks = append(c.Networks, nname)
			for _, nc := range t.Spec.Networks {
				if (nc.Target == na.Network.ID || nc.Target == nname) && len(nc.Aliases) > 0 {
					if c.Aliases == nil {
						c.Aliases = map[string][]string{}
					}
					c.Aliases[nname] = append(c.Aliases[nname], nc.Aliases...)
				}
			}
			for _, a := range na.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil {
					c.IPs = append(c.IPs, p.Addr().String())
				} else if ad, err := netip.ParseAddr(a); err == nil {
					c.IPs = append(c.IPs, ad.String())
				}
			}
			if !netWarned[nname] && (na.Network.Spec.IPAMOptions == nil || len(na.Network.Spec.IPAMOptions.Configs) == 0 ||
				na.Network.Spec.IPAMOptions.Configs[0].Subnet == "") {
				netWarned[nname] = true
				st.Warnings = append(st.Warnings, Warning{Object: "network " + nname,
					Problem: "has no fixed subnet: a restore on another swarm or after the network is recreated gets other addresses, and TCP connections cannot be kept",
					Fix:     "give it a subnet in the compose file (networks: NAME: ipam: config: - subnet: 10.x.y.0/24) and redeploy"})
			}
		}
		st.Containers = append(st.Containers, c)
	}
	if err := addStandalone(st, name, services, standalone, running); err != nil {
		return nil, err
	}
	for _, s := range services {
		want := 0
		if s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil {
			want = int(*s.Spec.Mode.Replicated.Replicas)
		}
		if running[s.ID] < want {
			return nil, fmt.Errorf("stack %q: service %s has %d of %d tasks running: %w (wait until 'docker service ls' shows it converged, then retry)",
				name, s.Spec.Name, running[s.ID], want, ErrNotReady)
		}
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
			if w, ok := healthcheckWarning(s.Spec.Name, cs.Healthcheck); ok {
				st.Warnings = append(st.Warnings, w)
			}
			if w, ok := userWarning(s.Spec.Name, cs.User); ok {
				st.Warnings = append(st.Warnings, w)
			}
			if len(cs.Secrets)+len(cs.Configs) > 0 {
				st.Warnings = append(st.Warnings, Warning{Object: "service " + s.Spec.Name,
					Problem: fmt.Sprintf("uses %d swarm secret(s) and %d config(s): swarm mounts them as files, an exact restore (the default, and migrate) creates the container without those mounts and CRIU fails (\"mnt: No mapping for ... mountpoint\"); a --mode swarm restore works (swarm mounts them again)", len(cs.Secrets), len(cs.Configs)),
					Fix:     "restore with --mode swarm, or pass such values another way (environment, a file in a volume or the image)"})
			}
		}
		if lost := notRestored(s.Spec); len(lost) > 0 {
			st.Warnings = append(st.Warnings, Warning{Object: "service " + s.Spec.Name,
				Problem: "an exact restore (the default, and migrate) does not carry " + strings.Join(lost, ", ") + ": the restored container runs without them",
				Fix:     "publish ports with mode: host or reach the service over the stack's overlay network, give docker stop -t by hand, or restore with --mode swarm (swarm applies the whole service spec)"})
		}
		if s.Spec.EndpointSpec == nil || s.Spec.EndpointSpec.Mode == "" || s.Spec.EndpointSpec.Mode == swarm.ResolutionModeVIP {
			st.Warnings = append(st.Warnings, Warning{Object: "service " + s.Spec.Name,
				Problem: "uses VIP endpoint mode: clients connect through a virtual IP whose load-balancer state is not checkpointed (and this kernel has no IPVS)",
				Fix:     "set deploy: endpoint_mode: dnsrr on the service"})
		}
	}
	for _, c := range st.Containers {
		for _, b := range c.BindMounts {
			st.Warnings = append(st.Warnings, Warning{Object: "container " + c.Key(),
				Problem: fmt.Sprintf("bind-mounts %s from its node: the path must exist on any restore target, and its content is not in the snapshot", b),
				Fix:     "use a named volume, or make sure " + b + " exists on the target node before restore"})
		}
	}
	if len(st.Containers) == 0 {
		return nil, fmt.Errorf("stack %q: %w: it has services but no running task (scale it up or wait for it to start)", name, ErrNotFound)
	}
	sort.Slice(st.Containers, func(i, j int) bool {
		if st.Containers[i].Service != st.Containers[j].Service {
			return st.Containers[i].Service < st.Containers[j].Service
		}
		return st.Containers[i].Slot < st.Containers[j].Slot
	})
	return st, nil
}

// addStandalone adds the restored standalone containers to st (see BuildWith), counting
// them in running (by service ID).
func addStandalone(st *Stack, name string, services []swarm.Service, standalone []Container, running map[string]int) error {
	if len(standalone) == 0 {
		return nil
	}
	svcByName := map[string]swarm.Service{}
	for _, s := range services {
		svcByName[s.Spec.Name] = s
	}
	taken := map[string]bool{}
	for _, c := range st.Containers {
		taken[c.Key()] = true
	}
	seen := map[string]Container{}
	var stopped []Container
	for _, c := range standalone {
		if c.State != "" && c.State != "running" {
			stopped = append(stopped, c)
			continue
		}
		s, ok := svcByName[c.Service]
		switch {
		case !ok:
			st.Warnings = append(st.Warnings, Warning{Object: "container " + c.ContainerID + " on " + c.Node,
				Problem: fmt.Sprintf("was restored for service %s, which stack %s no longer has: it is not part of the snapshot", c.Service, name),
				Fix:     "deploy the stack again (docker stack deploy) to include it, or remove the container (docker rm -f)"})
			continue
		case c.Slot < 1:
			return fmt.Errorf("stack %q: restored container %s on %s (service %s) has no slot: %w (remove it with docker rm -f, or restore the stack again)",
				name, c.ContainerID, c.Node, c.Service, ErrNotReady)
		case taken[c.Key()]:
			st.Warnings = append(st.Warnings, Warning{Object: "container " + c.Key() + " (" + c.ContainerID + " on " + c.Node + ")",
				Problem: "was restored as a standalone container for a slot that a running swarm task holds now: the task is snapshotted, not this container",
				Fix:     "remove the standalone container (docker rm -f " + c.ContainerID + ") so that the stack has one container per slot"})
			continue
		}
		if prev, dup := seen[c.Key()]; dup {
			return fmt.Errorf("stack %q: two restored containers run as %s: %s on %s and %s on %s: %w (remove the one that is not the stack's with docker rm -f, then retry)",
				name, c.Key(), prev.ContainerID, prev.Node, c.ContainerID, c.Node, ErrNotReady)
		}
		seen[c.Key()] = c
		c.ServiceID = s.ID
		if c.Image == "" && s.Spec.TaskTemplate.ContainerSpec != nil {
			c.Image = stripDigest(s.Spec.TaskTemplate.ContainerSpec.Image)
		}
		running[s.ID]++
		st.Containers = append(st.Containers, c)
	}
	for _, c := range stopped {
		if taken[c.Key()] || seen[c.Key()].ContainerID != "" || svcByName[c.Service].ID == "" {
			continue // its slot runs (or its service is gone): a leftover
		}
		st.Warnings = append(st.Warnings, Warning{Object: "container " + c.Key() + " (" + c.ContainerID + " on " + c.Node + ")",
			Problem: "was restored as a standalone container and is " + c.State + ": the snapshot does not include it, so a restore of the snapshot brings the stack back without this slot",
			Fix:     "restore the stack from a snapshot taken while it ran, or scale its service up (docker service scale " + c.Service + "=N) and remove the container (docker rm " + c.ContainerID + ")"})
	}
	return nil
}

// healthcheckWarning warns about a service's healthcheck: Docker runs it with exec, which
// fails while the container is frozen ("cannot exec in a paused container") or hangs until
// its timeout, so a freeze longer than about interval x retries makes Docker mark the task
// unhealthy and swarm replace it, losing the memory the snapshot was taken of (seen with
// redis: 5 back-to-back snapshots with a 300 ms healthcheck). A healthcheck defined only in
// the image is not in the service spec and cannot be seen here.
func healthcheckWarning(service string, hc *container.HealthConfig) (Warning, bool) {
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return Warning{}, false
	}
	interval, retries := hc.Interval, hc.Retries
	if interval <= 0 {
		interval = 30 * time.Second // Docker's defaults
	}
	if retries <= 0 {
		retries = 3
	}
	return Warning{Object: "service " + service,
		Problem: fmt.Sprintf("has a healthcheck (every %s, %d retries): its exec fails while a snapshot freezes the container, so a freeze longer than about %s makes Docker mark the task unhealthy and swarm replace it (the running process and its memory are lost)",
			interval, retries, interval*time.Duration(retries)),
		Fix: "keep interval x retries well above the longest freeze (the FROZEN column of 'swarmckpt snapshot'), or probe the service from outside its container"}, true
}

// notRestored lists the settings of a service that a container restored in exact mode
// does not get. The container is recreated from its recorded docker inspect (image,
// command, env, user, mounts, network, and the runtime settings of container.Spec:
// init, host-mode ports, limits, capabilities, ulimits, sysctls, extra_hosts, read_only,
// tmpfs, stop_signal, healthcheck, ...); what swarm itself does for a task is not in
// the container: publishing a port through the ingress routing mesh, and the stop
// grace period (swarm's own timeout, not the container's StopTimeout).
func notRestored(spec swarm.ServiceSpec) []string {
	var out []string
	if ep := spec.EndpointSpec; ep != nil {
		for _, p := range ep.Ports {
			if p.PublishedPort != 0 && p.PublishMode != swarm.PortConfigPublishModeHost {
				out = append(out, fmt.Sprintf("published port %d->%d/%s (ingress mode; mode: host ports are restored)", p.PublishedPort, p.TargetPort, p.Protocol))
			}
		}
	}
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil && cs.StopGracePeriod != nil && *cs.StopGracePeriod != 10*time.Second {
		out = append(out, fmt.Sprintf("stop_grace_period %s (the restored container gets docker stop's 10s)", *cs.StopGracePeriod))
	}
	return out
}

// rootUser tells whether a compose/Docker user ("", "0", "root", "0:0", "root:root",
// ...) is uid 0 and gid 0 (or the image's default, which cannot be seen here).
func rootUser(user string) bool {
	u, g, _ := strings.Cut(user, ":")
	return (u == "" || u == "0" || u == "root") && (g == "" || g == "0" || g == "root")
}

// userWarning warns about a service whose processes run as another user than root:
// CRIU reads every dumped process's resource limits (prlimit), which the kernel refuses
// for another user's process unless the dumping worker has CAP_SYS_RESOURCE. Where it
// lacks it (as on hosts that withhold that capability even from root) the worker
// refuses such a container before anything is locked (container.Dumpable), and the
// snapshot aborts. A USER set only in the image is not in the service spec and is not
// seen here (the worker still refuses it).
func userWarning(service, user string) (Warning, bool) {
	if rootUser(user) {
		return Warning{}, false
	}
	return Warning{Object: "service " + service,
		Problem: fmt.Sprintf("runs as user %q: CRIU must read the resource limits of every process it dumps, which for another user's process needs CAP_SYS_RESOURCE in the worker; on a node whose worker lacks it (grep CapEff /proc/self/status: bit 24 clear) the snapshot is refused before anything is locked (\"CRIU cannot dump a process of another user here\")", user),
		Fix:     "run the worker with CAP_SYS_RESOURCE, or run the service as root (user: \"0:0\") on such nodes"}, true
}

func stripDigest(img string) string {
	if i := strings.Index(img, "@sha256:"); i >= 0 {
		return img[:i]
	}
	return img
}

// StandaloneFunc lists the standalone containers that exact-mode restores created for
// stack's services, on every node, as the SERVICE.SLOT each was restored as (Node,
// ContainerID, IPs, Networks, Aliases and State set; TaskID empty).
type StandaloneFunc func(ctx context.Context, stack string) ([]Container, error)

// Resolver resolves stacks.
type Resolver interface {
	Resolve(ctx context.Context, name string) (*Stack, error)
}

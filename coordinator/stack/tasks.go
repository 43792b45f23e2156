package stack

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Task is one task of a stack's service as the swarm manager reports it: what a
// swarm-native restore follows (which node swarm assigned, which addresses it gave,
// whether the task runs).
type Task struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	TaskID  string `json:"task_id"`
	NodeID  string `json:"node_id,omitempty"`
	// Node is the node's hostname ("" until swarm assigned one).
	Node         string    `json:"node,omitempty"`
	DesiredState string    `json:"desired_state"`
	State        string    `json:"state"`
	Err          string    `json:"err,omitempty"`
	ContainerID  string    `json:"container_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// StateSince is when the task reached State (swarm's status timestamp; zero:
	// unknown).
	StateSince time.Time `json:"state_since,omitzero"`
	// Addresses are the task's addresses, network name -> IPs (ingress left out), in
	// the order swarm lists its attachments.
	Addresses []NetAddr `json:"addresses,omitempty"`
	// StopGracePeriod is the task's stop_grace_period (0: not set, Docker's default
	// of 10 s applies).
	StopGracePeriod time.Duration `json:"stop_grace_period,omitempty"`
	// Image is the task's image (its spec's, without a digest): a drain hold's
	// network keepers run it on the nodes that may take the replacement.
	Image string `json:"image,omitempty"`
}

// NetAddr is an address on a named network.
type NetAddr struct {
	Network string `json:"network"`
	IP      string `json:"ip"`
}

// Key is SERVICE.SLOT.
func (t Task) Key() string { return fmt.Sprintf("%s.%d", t.Service, t.Slot) }

// Swarm is what a swarm-native restore asks of the swarm manager.
type Swarm interface {
	// StopStack scales every service of the stack to 0 and waits until none of their
	// tasks runs.
	StopStack(ctx context.Context, stack string) error
	// ScaleServices sets the replicas of the stack's services (by service name) in
	// one update each, adding constraints (e.g. "node.hostname!=n1") to their
	// placement when given.
	ScaleServices(ctx context.Context, stack string, replicas map[string]uint64, constraints []string) error
	// Tasks lists the tasks of the stack's services (every desired state).
	Tasks(ctx context.Context, stack string) ([]Task, error)
}

var _ Swarm = (*Docker)(nil)

// ScaleServices implements Swarm.
func (d *Docker) ScaleServices(ctx context.Context, stack string, replicas map[string]uint64, constraints []string) error {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	found := map[string]bool{}
	for _, s := range services {
		n, ok := replicas[s.Spec.Name]
		if !ok {
			continue
		}
		found[s.Spec.Name] = true
		if s.Spec.Mode.Replicated == nil {
			return fmt.Errorf("stack %q: service %s is global: it cannot be scaled for a swarm-native restore (use --mode exact)", stack, s.Spec.Name)
		}
		spec := s.Spec
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &n}
		if len(constraints) > 0 {
			if spec.TaskTemplate.Placement == nil {
				spec.TaskTemplate.Placement = &swarm.Placement{}
			}
			for _, c := range constraints {
				if !slices.Contains(spec.TaskTemplate.Placement.Constraints, c) {
					spec.TaskTemplate.Placement.Constraints = append(spec.TaskTemplate.Placement.Constraints, c)
				}
			}
		}
		if _, err := d.cli.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("stack %q: scale service %s to %d: %w", stack, s.Spec.Name, n, err)
		}
	}
	for name := range replicas {
		if !found[name] {
			return fmt.Errorf("stack %q: %w: service %s is not deployed (deploy the stack again with 'docker stack deploy', then restore)", stack, ErrNotFound, name)
		}
	}
	return nil
}

// Tasks implements Swarm.
func (d *Docker) Tasks(ctx context.Context, stack string) ([]Task, error) {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	if len(services) == 0 {
		return nil, nil
	}
	tf := filters.NewArgs()
	for _, s := range services {
		tf.Add("service", s.ID)
	}
	tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: tf})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list tasks: %w", stack, err)
	}
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list nodes: %w", stack, err)
	}
	return BuildTasks(services, tasks, nodes), nil
}

// BuildTasks turns what the manager reports into Tasks (pure).
func BuildTasks(services []swarm.Service, tasks []swarm.Task, nodes []swarm.Node) []Task {
	nodeName := map[string]string{}
	for _, n := range nodes {
		h := n.Description.Hostname
		if h == "" {
			h = n.ID
		}
		nodeName[n.ID] = h
	}
	svcName := map[string]string{}
	for _, s := range services {
		svcName[s.ID] = s.Spec.Name
	}
	var out []Task
	for _, t := range tasks {
		name, ok := svcName[t.ServiceID]
		if !ok {
			continue
		}
		o := Task{Service: name, Slot: t.Slot, TaskID: t.ID, NodeID: t.NodeID, Node: nodeName[t.NodeID],
			DesiredState: string(t.DesiredState), State: string(t.Status.State), Err: t.Status.Err, CreatedAt: t.CreatedAt, StateSince: t.Status.Timestamp}
		if o.Node == "" {
			o.Node = t.NodeID
		}
		if o.Slot == 0 {
			o.Slot = 1
		}
		if t.Status.ContainerStatus != nil {
			o.ContainerID = t.Status.ContainerStatus.ContainerID
		}
		if cs := t.Spec.ContainerSpec; cs != nil {
			o.Image = stripDigest(cs.Image)
			if cs.StopGracePeriod != nil {
				o.StopGracePeriod = *cs.StopGracePeriod
			}
		}
		for _, na := range t.NetworksAttachments {
			if na.Network.Spec.Ingress {
				continue
			}
			for _, a := range na.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil {
					o.Addresses = append(o.Addresses, NetAddr{Network: na.Network.Spec.Name, IP: p.Addr().String()})
				} else if ad, err := netip.ParseAddr(a); err == nil {
					o.Addresses = append(o.Addresses, NetAddr{Network: na.Network.Spec.Name, IP: ad.String()})
				}
			}
		}
		out = append(out, o)
	}
	return out
}

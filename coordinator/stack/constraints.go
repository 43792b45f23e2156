package stack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// ConstraintRemover is a Swarm that can take placement constraints off the stack's
// services again: `migrate --mode swarm` steers swarm with one (node.hostname==TO or
// node.hostname!=FROM) only for the restore; left on the services it would pin them
// to (or away from) a node forever, and a second migrate would add a contradictory
// one. Swarm does not restart a task when only the placement constraints of its service
// change and its node still satisfies them (swarmkit's IsTaskDirty), so removing a
// constraint leaves the restored tasks alone.
type ConstraintRemover interface {
	// RemoveConstraints removes constraints from the placement of the stack's
	// services named in services; replicas and everything else stay. Services
	// without them are not updated.
	RemoveConstraints(ctx context.Context, stack string, services []string, constraints []string) error
}

// PlacementReader tells the placement constraints each service of a stack has now,
// so that a constraint added for a restore can be checked against them before
// anything is touched (a service pinned to the node a migration leaves would
// otherwise stay pending: "no suitable node").
type PlacementReader interface {
	// Placement returns each service's constraints, by service name.
	Placement(ctx context.Context, stack string) (map[string][]string, error)
}

var (
	_ ConstraintRemover = (*Docker)(nil)
	_ ConstraintRemover = (*FakeSwarm)(nil)
	_ PlacementReader   = (*Docker)(nil)
	_ PlacementReader   = (*FakeSwarm)(nil)
)

// Placement implements PlacementReader.
func (d *Docker) Placement(ctx context.Context, stack string) (map[string][]string, error) {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	list, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	out := map[string][]string{}
	for _, s := range list {
		out[s.Spec.Name] = nil
		if p := s.Spec.TaskTemplate.Placement; p != nil {
			out[s.Spec.Name] = slices.Clone(p.Constraints)
		}
	}
	return out, nil
}

// Placement implements PlacementReader: ServiceConstraints.
func (f *FakeSwarm) Placement(context.Context, string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for k, v := range f.ServiceConstraints {
		out[k] = slices.Clone(v)
	}
	return out, nil
}

// withoutConstraints returns cs without the constraints in drop, and whether any was
// dropped.
func withoutConstraints(cs, drop []string) ([]string, bool) {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		if !slices.Contains(drop, c) {
			out = append(out, c)
		}
	}
	return out, len(out) != len(cs)
}

// RemoveConstraints implements ConstraintRemover.
func (d *Docker) RemoveConstraints(ctx context.Context, stack string, services []string, constraints []string) error {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	list, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	for _, s := range list {
		if !slices.Contains(services, s.Spec.Name) || s.Spec.TaskTemplate.Placement == nil {
			continue
		}
		kept, changed := withoutConstraints(s.Spec.TaskTemplate.Placement.Constraints, constraints)
		if !changed {
			continue
		}
		spec := s.Spec
		p := *spec.TaskTemplate.Placement
		p.Constraints = kept
		spec.TaskTemplate.Placement = &p
		if _, err := d.cli.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("stack %q: remove placement constraints %v from service %s: %w (remove them by hand: docker service update --constraint-rm ...)", stack, constraints, s.Spec.Name, err)
		}
	}
	return nil
}

// AddConstraints adds constraints to the placement of the stack's services named in
// services (those that have them all already are not updated). Swarm then replaces
// exactly the tasks whose node no longer satisfies them (a migration of only the
// moving tasks in swarm mode, coordinator/moveheld.go).
func (d *Docker) AddConstraints(ctx context.Context, stack string, services []string, constraints []string) error {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	list, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	for _, s := range list {
		if !slices.Contains(services, s.Spec.Name) {
			continue
		}
		spec := s.Spec
		var p swarm.Placement
		if spec.TaskTemplate.Placement != nil {
			p = *spec.TaskTemplate.Placement
		}
		cs := slices.Clone(p.Constraints)
		for _, c := range constraints {
			if !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
		if len(cs) == len(p.Constraints) {
			continue
		}
		p.Constraints = cs
		spec.TaskTemplate.Placement = &p
		if _, err := d.cli.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("stack %q: add placement constraints %v to service %s: %w", stack, constraints, s.Spec.Name, err)
		}
	}
	return nil
}

// AddConstraints records the constraints in Constraints (the fake moves no task).
func (f *FakeSwarm) AddConstraints(_ context.Context, _ string, _ []string, constraints []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Constraints = append(f.Constraints, constraints...)
	return nil
}

// RemoveConstraints implements ConstraintRemover: the constraints leave Constraints.
func (f *FakeSwarm) RemoveConstraints(_ context.Context, _ string, _ []string, constraints []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Constraints, _ = withoutConstraints(f.Constraints, constraints)
	return nil
}

// EligibleNodes returns the nodes (by hostname) that the hostname constraints among cs
// allow: `node.hostname==N` keeps N only, `node.hostname!=N` drops N (spaces around the
// operator allowed, as swarm allows them). Other constraints are not evaluated here:
// they filter nothing.
func EligibleNodes(nodes, cs []string) []string {
	out := slices.Clone(nodes)
	for _, c := range cs {
		for _, op := range []string{"==", "!="} {
			k, v, ok := strings.Cut(c, op)
			if !ok || strings.TrimSpace(k) != "node.hostname" {
				continue
			}
			v = strings.TrimSpace(v)
			out = slices.DeleteFunc(out, func(n string) bool { return (n == v) != (op == "==") })
			break
		}
	}
	return out
}

// ReplicaReader tells the replicas each replicated service of a stack is set to (by
// service name): a partial migration scales a service down by the slots it moves
// out of swarm's hands.
type ReplicaReader interface {
	ServiceReplicas(ctx context.Context, stack string) (map[string]uint64, error)
}

var (
	_ ReplicaReader = (*Docker)(nil)
	_ ReplicaReader = (*FakeSwarm)(nil)
)

// ServiceReplicas implements ReplicaReader (global services are left out).
func (d *Docker) ServiceReplicas(ctx context.Context, stack string) (map[string]uint64, error) {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+stack))
	list, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list services: %w", stack, err)
	}
	out := map[string]uint64{}
	for _, s := range list {
		if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			out[s.Spec.Name] = *r.Replicas
		}
	}
	return out, nil
}

// ServiceReplicas implements ReplicaReader.
func (f *FakeSwarm) ServiceReplicas(context.Context, string) (map[string]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range f.replicas {
		out[k] = v
	}
	return out, nil
}

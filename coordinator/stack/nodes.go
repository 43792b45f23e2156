package stack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Node availabilities (swarm's).
const (
	AvailabilityActive = "active"
	AvailabilityPause  = "pause"
	AvailabilityDrain  = "drain"
)

// NodeAvailability returns the swarm availability (active, pause, drain) of the node
// named node (hostname or node ID).
func (d *Docker) NodeAvailability(ctx context.Context, node string) (string, error) {
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return "", fmt.Errorf("stack: list nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Description.Hostname == node || n.ID == node {
			return string(n.Spec.Availability), nil
		}
	}
	return "", fmt.Errorf("stack: node %q: %w", node, ErrNotFound)
}

// SetAvailability sets a fake node's availability (NodeAvailability).
func (f *FakeSwarm) SetAvailability(node, availability string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.availability == nil {
		f.availability = map[string]string{}
	}
	f.availability[node] = availability
}

// NodeAvailability implements the availability query on the fake: active unless
// SetAvailability said otherwise; a node not in Nodes is not found.
func (f *FakeSwarm) NodeAvailability(_ context.Context, node string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := false
	for _, n := range f.Nodes {
		known = known || n == node
	}
	if !known {
		return "", fmt.Errorf("stack: node %q: %w", node, ErrNotFound)
	}
	if a := f.availability[node]; a != "" {
		return a, nil
	}
	return AvailabilityActive, nil
}

// ErrBadAvailability is wrapped when an availability other than active, pause or
// drain is asked for.
var ErrBadAvailability = errors.New("stack: availability must be active, pause or drain")

func validAvailability(a string) error {
	switch a {
	case AvailabilityActive, AvailabilityPause, AvailabilityDrain:
		return nil
	}
	return fmt.Errorf("%w, not %q", ErrBadAvailability, a)
}

// SetNodeAvailability sets the swarm availability of the node named node (hostname or
// node ID), as `docker node update --availability` does.
func (d *Docker) SetNodeAvailability(ctx context.Context, node, availability string) error {
	if err := validAvailability(availability); err != nil {
		return err
	}
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return fmt.Errorf("stack: list nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Description.Hostname != node && n.ID != node {
			continue
		}
		spec := n.Spec
		spec.Availability = swarm.NodeAvailability(availability)
		if err := d.cli.NodeUpdate(ctx, n.ID, n.Version, spec); err != nil {
			return fmt.Errorf("stack: set node %s to %s: %w", node, availability, err)
		}
		return nil
	}
	return fmt.Errorf("stack: node %q: %w", node, ErrNotFound)
}

// SetNodeAvailability implements the availability change on the fake (as
// SetAvailability, with the real one's errors).
func (f *FakeSwarm) SetNodeAvailability(_ context.Context, node, availability string) error {
	if err := validAvailability(availability); err != nil {
		return err
	}
	f.mu.Lock()
	known := slices.Contains(f.Nodes, node)
	f.mu.Unlock()
	if !known {
		return fmt.Errorf("stack: node %q: %w", node, ErrNotFound)
	}
	f.SetAvailability(node, availability)
	return nil
}

// Reschedule does to node what swarm does when it is drained: each task running there
// is marked for shutdown (it runs on until its container stops) and a replacement for
// its slot is created on another node that is active and not down. It returns the
// tasks marked, as they were.
func (f *FakeSwarm) Reschedule(node string) []Task {
	return f.replace(func(t *Task) bool { return t.Node == node }, func(n string) bool { return n != node })
}

// Replace is what swarm does when a placement constraint is added to services: it
// replaces their running tasks whose node the constraint excludes (on from, or, with
// to, not on to) by new tasks on the nodes it allows, and returns the old tasks (as
// they were). A task whose node still satisfies it stays.
func (f *FakeSwarm) Replace(services []string, from, to string) []Task {
	excluded := func(n string) bool { return from != "" && n == from || to != "" && n != to }
	return f.replace(func(t *Task) bool { return slices.Contains(services, t.Service) && excluded(t.Node) },
		func(n string) bool { return !excluded(n) })
}

// replace replaces the running tasks that moving selects by tasks on the active,
// up nodes that allowed admits (round robin); none when no node is left.
func (f *FakeSwarm) replace(moving func(*Task) bool, allowed func(node string) bool) []Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	var others []string
	for _, n := range f.Nodes {
		if allowed(n) && f.states[n] != "down" && (f.availability[n] == "" || f.availability[n] == AvailabilityActive) {
			others = append(others, n)
		}
	}
	var old []Task
	for _, t := range slices.Clone(f.tasks) {
		if !moving(t) || t.DesiredState != "running" || len(others) == 0 {
			continue
		}
		old = append(old, *t)
		t.DesiredState = "shutdown"
		f.next++
		n := others[f.rr%len(others)]
		f.rr++
		f.tasks = append(f.tasks, &Task{Service: t.Service, Slot: t.Slot, Image: t.Image, TaskID: fmt.Sprintf("task%d", f.next), Node: n, NodeID: n,
			DesiredState: "running", State: "assigned", CreatedAt: time.Now(),
			Addresses: []NetAddr{{Network: f.Network, IP: fmt.Sprintf("%s%d", f.Subnet, 9+f.next)}}})
	}
	return old
}

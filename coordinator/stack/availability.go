package stack

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/swarm"
)

// AvailabilityWriter lists the swarm's nodes with their availability and changes one:
// a partial migration pauses every node but one for a moment, so that swarm places
// the replacement of a moved task where its scale-down removes it (restore/partial.go).
type AvailabilityWriter interface {
	// NodeAvailabilities returns every node's availability, by hostname.
	NodeAvailabilities(ctx context.Context) (map[string]string, error)
	// UpdateNodeAvailability sets the availability (active, pause, drain) of the node
	// named node (hostname or node ID).
	UpdateNodeAvailability(ctx context.Context, node, availability string) error
}

var (
	_ AvailabilityWriter = (*Docker)(nil)
	_ AvailabilityWriter = (*FakeSwarm)(nil)
)

// NodeAvailabilities implements AvailabilityWriter.
func (d *Docker) NodeAvailabilities(ctx context.Context) (map[string]string, error) {
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("stack: list nodes: %w", err)
	}
	out := map[string]string{}
	for _, n := range nodes {
		h := n.Description.Hostname
		if h == "" {
			h = n.ID
		}
		out[h] = string(n.Spec.Availability)
	}
	return out, nil
}

// UpdateNodeAvailability implements AvailabilityWriter.
func (d *Docker) UpdateNodeAvailability(ctx context.Context, node, availability string) error {
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
			return fmt.Errorf("stack: set node %s %s: %w (set it by hand: docker node update --availability %s %s)", node, availability, err, availability, node)
		}
		return nil
	}
	return fmt.Errorf("stack: node %q: %w", node, ErrNotFound)
}

// NodeAvailabilities implements AvailabilityWriter: every node of Nodes.
func (f *FakeSwarm) NodeAvailabilities(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range f.Nodes {
		a, _ := f.NodeAvailability(ctx, n)
		out[n] = a
	}
	return out, nil
}

// UpdateNodeAvailability implements AvailabilityWriter (SetAvailability).
func (f *FakeSwarm) UpdateNodeAvailability(_ context.Context, node, availability string) error {
	f.SetAvailability(node, availability)
	return nil
}

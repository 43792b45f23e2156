package stack

import (
	"context"
	"fmt"

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

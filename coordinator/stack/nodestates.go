package stack

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/swarm"
)

// NodeStates returns every swarm node's state as the manager reports it (ready, down,
// unknown, disconnected), by hostname: one of node-loss recovery's signals
// (coordinator/nodeloss).
func (d *Docker) NodeStates(ctx context.Context) (map[string]string, error) {
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("stack: list nodes: %w", err)
	}
	out := make(map[string]string, len(nodes))
	for _, n := range nodes {
		h := n.Description.Hostname
		if h == "" {
			h = n.ID
		}
		out[h] = string(n.Status.State)
	}
	return out, nil
}

// onLiveNodes drops the tasks on nodes the manager reports down (pure): their last
// reported state ("running") stays until the node comes back, and a stop must not
// wait for a node that is gone (the task is shut down there by swarm's reconciliation
// when it returns: its desired state is no longer running).
func onLiveNodes(tasks []swarm.Task, nodes []swarm.Node) []swarm.Task {
	down := map[string]bool{}
	for _, n := range nodes {
		if n.Status.State == swarm.NodeStateDown {
			down[n.ID] = true
		}
	}
	if len(down) == 0 {
		return tasks
	}
	out := make([]swarm.Task, 0, len(tasks))
	for _, t := range tasks {
		if !down[t.NodeID] {
			out = append(out, t)
		}
	}
	return out
}

// SetNodeState sets a fake node's swarm state (NodeStates; default ready).
func (f *FakeSwarm) SetNodeState(node, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states == nil {
		f.states = map[string]string{}
	}
	f.states[node] = state
}

// NodeStates implements the node-state query on the fake: every node of Nodes, ready
// unless SetNodeState said otherwise.
func (f *FakeSwarm) NodeStates(context.Context) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, n := range f.Nodes {
		out[n] = string(swarm.NodeStateReady)
		if s := f.states[n]; s != "" {
			out[n] = s
		}
	}
	return out, nil
}

package stack

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// FakeSwarm is an in-memory Swarm for tests: ScaleServices creates tasks for slots
// 1..N, assigns them to Nodes round robin and gives them addresses on Network from
// Subnet (".10" up); Tasks calls Start for every task not yet running, which says what
// the node made of it (running with a container, or still starting, or failed).
type FakeSwarm struct {
	Nodes   []string
	Network string
	Subnet  string // e.g. "10.1.0." (addresses Subnet+10, +11, ...)
	// Start decides the state of a task that is not running yet; nil: it runs.
	Start func(t Task) (state, container, errMsg string)
	// ShutdownFailed makes a task that Start failed end as on a real swarm: desired
	// state shutdown at once; with ReplaceFailed swarm creates its replacement (same
	// slot and node, a new address), else none (it holds it back).
	ShutdownFailed, ReplaceFailed bool
	// FailScale makes ScaleServices fail; FailStop makes StopStack and StopServices
	// fail (nothing changed).
	FailScale, FailStop error
	// Services, when set, are the stack's services: scaling another one fails with
	// ErrNotFound (as on a real swarm).
	Services []string
	// ServiceConstraints are the services' own placement constraints (Placement).
	ServiceConstraints map[string][]string

	mu       sync.Mutex
	replicas map[string]uint64
	tasks    []*Task
	next     int
	rr       int
	// Constraints records the constraints ScaleServices was given.
	Constraints []string
	Stops       int
	// Killed records the containers StopServices handed to its kill function.
	Killed map[string][]string
	// availability is SetAvailability's (nodes.go).
	availability map[string]string
	// states is SetNodeState's (nodestates.go).
	states map[string]string
}

var _ Swarm = (*FakeSwarm)(nil)

// StopStack implements Swarm: every task is shut down, every service at 0.
func (f *FakeSwarm) StopStack(ctx context.Context, stack string) error {
	_, err := f.StopServices(ctx, stack, nil)
	return err
}

// StopServices is StopStack returning the replicas each service had (as
// stack.Docker's); kill gets the containers of the running tasks by node.
func (f *FakeSwarm) StopServices(ctx context.Context, _ string, kill func(ctx context.Context, byNode map[string][]string)) (map[string]uint64, error) {
	f.mu.Lock()
	if f.FailStop != nil {
		f.mu.Unlock()
		return nil, f.FailStop
	}
	f.Stops++
	prior := map[string]uint64{}
	for s, n := range f.replicas {
		if n > 0 {
			prior[s] = n
		}
		f.replicas[s] = 0
	}
	running := map[string][]string{}
	for _, t := range f.tasks {
		if t.State == "running" && t.ContainerID != "" {
			running[t.Node] = append(running[t.Node], t.ContainerID)
		}
		t.DesiredState, t.State = "shutdown", "shutdown"
	}
	f.mu.Unlock()
	if kill != nil && len(running) > 0 {
		kill(ctx, running)
		f.mu.Lock()
		f.Killed = running
		f.mu.Unlock()
	}
	return prior, nil
}

// ScaleServices implements Swarm.
func (f *FakeSwarm) ScaleServices(_ context.Context, _ string, replicas map[string]uint64, constraints []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailScale != nil {
		return f.FailScale
	}
	if f.Services != nil {
		for s := range replicas {
			if !slices.Contains(f.Services, s) {
				return fmt.Errorf("fake swarm: %w: service %s is not deployed", ErrNotFound, s)
			}
		}
	}
	if f.replicas == nil {
		f.replicas = map[string]uint64{}
	}
	f.Constraints = append(f.Constraints, constraints...)
	names := make([]string, 0, len(replicas))
	for s := range replicas {
		names = append(names, s)
	}
	sort.Strings(names)
	// As swarm does: tasks go only to nodes that satisfy the hostname constraints.
	nodes := slices.DeleteFunc(EligibleNodes(f.Nodes, constraints), func(n string) bool { return f.states[n] == "down" }) // nor to a down node
	if len(nodes) == 0 {
		return fmt.Errorf("fake swarm: no node of %v satisfies %v", f.Nodes, constraints)
	}
	for _, s := range names {
		f.replicas[s] = replicas[s]
		for slot := 1; slot <= int(replicas[s]); slot++ {
			f.next++
			node := nodes[f.rr%len(nodes)]
			f.rr++
			f.tasks = append(f.tasks, &Task{Service: s, Slot: slot, Image: FakeImage(s), TaskID: fmt.Sprintf("task%d", f.next), Node: node, NodeID: node,
				DesiredState: "running", State: "assigned", CreatedAt: time.Now(),
				Addresses: []NetAddr{{Network: f.Network, IP: fmt.Sprintf("%s%d", f.Subnet, 9+f.next)}}})
		}
	}
	return nil
}

// FakeImage is the image of service's tasks in a FakeSwarm.
func FakeImage(service string) string { return "fake/" + service + ":latest" }

// Tasks implements Swarm.
func (f *FakeSwarm) Tasks(_ context.Context, _ string) ([]Task, error) {
	f.mu.Lock()
	pending := []*Task{}
	for _, t := range f.tasks {
		if t.DesiredState == "running" && t.State != "running" && t.State != "failed" {
			pending = append(pending, t)
		}
	}
	f.mu.Unlock()
	for _, t := range pending {
		state, ctr, msg := "running", "ctr-"+t.TaskID, ""
		if f.Start != nil {
			state, ctr, msg = f.Start(*t)
		}
		f.mu.Lock()
		if t.DesiredState == "running" {
			t.State, t.ContainerID, t.Err = state, ctr, msg
			if state == "failed" && f.ShutdownFailed {
				t.DesiredState = "shutdown"
				if f.ReplaceFailed {
					f.next++
					f.tasks = append(f.tasks, &Task{Service: t.Service, Slot: t.Slot, Image: t.Image, TaskID: fmt.Sprintf("task%d", f.next), Node: t.Node, NodeID: t.NodeID,
						DesiredState: "running", State: "assigned", CreatedAt: time.Now(),
						Addresses: []NetAddr{{Network: f.Network, IP: fmt.Sprintf("%s%d", f.Subnet, 9+f.next)}}})
				}
			}
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Task, 0, len(f.tasks))
	for _, t := range f.tasks {
		out = append(out, *t)
	}
	return out, nil
}

// Replicas returns the replicas of service.
func (f *FakeSwarm) Replicas(service string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replicas[service]
}

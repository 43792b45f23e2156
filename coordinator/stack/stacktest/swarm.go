package stacktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// Swarm checks sw on a deployed stack whose replicated service service may be scaled:
// StopStack leaves no task running; ScaleServices to replicas gives that many current
// tasks with slots 1..replicas, each assigned to a node with an address, all running in
// time; scaling a service the stack does not have fails with stack.ErrNotFound.
func Swarm(t *testing.T, sw stack.Swarm, stackName, service string, replicas uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sw.StopStack(ctx, stackName); err != nil {
		t.Fatalf("StopStack: %v", err)
	}
	tasks, err := sw.Tasks(ctx, stackName)
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	for _, tk := range tasks {
		if tk.Service == service && tk.DesiredState == "running" {
			t.Fatalf("task %s still desired running after StopStack: %+v", tk.Key(), tk)
		}
	}
	since := time.Now().Add(-time.Second)
	if err := sw.ScaleServices(ctx, stackName, map[string]uint64{service: replicas}, nil); err != nil {
		t.Fatalf("ScaleServices: %v", err)
	}
	var current map[int]stack.Task
	for {
		tasks, err := sw.Tasks(ctx, stackName)
		if err != nil {
			t.Fatalf("Tasks: %v", err)
		}
		current = map[int]stack.Task{}
		for _, tk := range tasks {
			if tk.Service == service && tk.DesiredState == "running" && !tk.CreatedAt.Before(since) {
				current[tk.Slot] = tk
			}
		}
		running := 0
		for _, tk := range current {
			if tk.State == "running" && tk.ContainerID != "" && tk.Node != "" && len(tk.Addresses) > 0 {
				running++
			}
		}
		if uint64(len(current)) == replicas && uint64(running) == replicas {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after scaling %s to %d: current tasks %+v", service, replicas, current)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for slot := 1; slot <= int(replicas); slot++ {
		if _, ok := current[slot]; !ok {
			t.Fatalf("no task for slot %d after scaling to %d (slots %v)", slot, replicas, current)
		}
	}
	if err := sw.ScaleServices(ctx, stackName, map[string]uint64{"no-such-service": 1}, nil); !errors.Is(err, stack.ErrNotFound) {
		t.Fatalf("scaling a service the stack lacks: %v, want stack.ErrNotFound", err)
	}
}

package coordinator_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// A swarm-mode restore stops the stack the way an exact restore does: the tasks'
// containers still running once swarm ordered their shutdown are handed to Kill, by
// node (the old tasks in the stop step, the restored ones when the restore is undone).
func TestSwarmRestoreKillsTheStoppedTasks(t *testing.T) {
	ctx := context.Background()
	running := func(e *swarmEnv) map[string][]string {
		t.Helper()
		tasks, err := e.sw.Tasks(ctx, "bank")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, tk := range tasks {
			if tk.State == "running" {
				out[tk.Node] = append(out[tk.Node], tk.ContainerID)
			}
		}
		return out
	}
	start := func(e *swarmEnv) map[string][]string {
		t.Helper()
		if err := e.sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 3}, nil); err != nil {
			t.Fatal(err)
		}
		r := running(e)
		if len(r) != 3 {
			t.Fatalf("the stack runs on %v before the restore, want 3 nodes", r)
		}
		return r
	}
	var mu sync.Mutex
	var kills []map[string][]string
	kill := func(_ context.Context, byNode map[string][]string) {
		mu.Lock()
		kills = append(kills, maps.Clone(byNode))
		mu.Unlock()
	}

	e := newSwarmEnv(t)
	m := bankManifest()
	e.putSets(m)
	before := start(e)
	r := e.restorer()
	r.Kill = kill
	if _, err := r.Run(ctx, m, swarmNodes, nil); err != nil {
		t.Fatal(err)
	}
	if len(kills) != 1 || fmt.Sprint(kills[0]) != fmt.Sprint(before) {
		t.Fatalf("killed %v, want once the tasks that ran before the restore: %v", kills, before)
	}
	stopped := false
	for _, ev := range e.events {
		stopped = stopped || ev.Phase == "stopped"
	}
	if !stopped {
		t.Errorf("no 'stopped' event (with the stop's duration): %+v", e.events)
	}

	// Undo: the restored tasks that run are killed too.
	kills = nil
	e2 := newSwarmEnv(t)
	e2.putSets(m)
	start(e2)
	e2.fresh = "bank_holder.2" // runs, but not from its set: found after all run
	r2 := e2.restorer()
	r2.Kill = kill
	if _, err := r2.Run(ctx, m, swarmNodes, nil); err == nil {
		t.Fatal("restore with a task started fresh succeeded")
	}
	e2.requireUndone(t, m)
	if len(kills) != 2 {
		t.Fatalf("kills %v, want two (the stop, the undo)", kills)
	}
	var restored []string // the new tasks' containers (ctr-task4..6)
	for _, ids := range kills[1] {
		restored = append(restored, ids...)
	}
	slices.Sort(restored)
	if fmt.Sprint(restored) != "[ctr-task4 ctr-task5 ctr-task6]" {
		t.Errorf("the undo killed %v, want the three new tasks that ran", restored)
	}
}

// Through the service, --mode swarm kills the stack's tasks through the node agents
// (Service.killTasks) as the exact mode does.
func TestRestoreModeSwarmKillsThroughTheAgents(t *testing.T) {
	e := newExactEnv(t)
	e.putSets(e.m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.svc.Restore(ctx, api.RestoreRequest{ID: e.m.ID, Mode: api.ModeSwarm}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sw.Killed); n != 3 {
		t.Errorf("tasks killed on %d nodes (%v), want 3", n, e.sw.Killed)
	}
}

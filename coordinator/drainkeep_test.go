package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
	wrestore "github.com/swarmckpt/swarmckpt/worker/restore"
)

// keepWatch records, when the fake swarm stops the moving tasks (the drain set, or
// the placement constraint added), which keepers each node held prepared then, and
// when each node's Prepare said its keepers were ready.
type keepWatch struct {
	mu      sync.Mutex
	atStop  map[string][]string // node -> prepared holds when the stops began
	stopAt  time.Time
	readyAt map[string]time.Time
}

// watchKeepers wraps the fake swarm's stops (holdStops must have set them) and makes
// each node's keepers take delay to be ready (as a worker's keepers take seconds).
func watchKeepers(e *env, sw *drainingSwarm, delay time.Duration) *keepWatch {
	w := &keepWatch{atStop: map[string][]string{}, readyAt: map[string]time.Time{}}
	for n, ex := range e.execs {
		ex.PrepareReady = func(ctx context.Context, _ worker.PreflightRequest) error {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			w.mu.Lock()
			w.readyAt[n] = time.Now()
			w.mu.Unlock()
			return nil
		}
	}
	sw.mu.Lock()
	inner := sw.stops
	sw.stops = func(old []stack.Task) {
		w.mu.Lock()
		if w.stopAt.IsZero() {
			w.stopAt = time.Now()
			for n, ex := range e.execs {
				w.atStop[n] = ex.PreparedHolds()
			}
		}
		w.mu.Unlock()
		inner(old)
	}
	sw.mu.Unlock()
	return w
}

// requireNoKeepers fails unless no node holds a prepared keeper and no keepers'
// journal is left: released once the operation ended, not left to their bound.
func requireNoKeepers(t *testing.T, e *env) {
	t.Helper()
	for n, ex := range e.execs {
		if h := ex.PreparedHolds(); len(h) > 0 {
			t.Errorf("%s still holds network keepers %v after the operation ended", n, h)
		}
	}
	ops, err := e.store.ListOperations(context.Background())
	if err != nil || len(ops) > 0 {
		t.Errorf("journal after the operation: %+v %v, want none", ops, err)
	}
}

func keepNames(id string, tasks []stack.Task) []string {
	var out []string
	for _, tk := range tasks {
		out = append(out, restore.KeepName(id, tk.Key()))
	}
	slices.Sort(out)
	return out
}

// swarmckpt node drain, swarm mode: before it sets the node to drain, every other
// node keeps the networks of the held tasks (network keepers, prepared and waited
// for), so that the node swarm gives a replacement joins no network on the
// downtime (docs/drain.md "Network keepers of the drain hold"); the keepers keep
// none of the moving tasks' addresses (they are in the request), and are released
// once the replacements run.
func TestNodeDrainSwarmModeKeepsNetworksOnTheOtherNodes(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	before := bankOn(t, ctx, sw)
	moving := before["lab-2"]
	if len(moving) == 0 {
		t.Fatalf("no bank task on lab-2: %+v", before)
	}
	holdStops(e, sw)
	w := watchKeepers(e, sw, 300*time.Millisecond)
	if _, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-k", Node: "lab-2", Availability: api.AvailabilityDrain}); err != nil {
		t.Fatalf("node drain: %v", err)
	}
	want := keepNames("drain-k", moving)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopAt.IsZero() {
		t.Fatal("the drain stopped no task")
	}
	for _, n := range []string{"lab-1", "lab-3"} {
		if fmt.Sprint(w.atStop[n]) != fmt.Sprint(want) {
			t.Errorf("when the drain stopped the tasks, %s held keepers %v, want %v", n, w.atStop[n], want)
		}
		if r := w.readyAt[n]; r.IsZero() || r.After(w.stopAt) {
			t.Errorf("%s's keepers ready at %v, the drain set at %v: the drain must wait for them", n, r, w.stopAt)
		}
		reqs := e.execs[n].Prepared()
		if len(reqs) != 1 || !reqs[0].Ready {
			t.Fatalf("%s got Prepare requests %+v, want one with Ready", n, reqs)
		}
		for _, tk := range moving {
			if !slices.ContainsFunc(reqs[0].Containers, func(c wrestore.CheckContainer) bool {
				return c.Key == tk.Key() && c.Image == tk.Image && c.Image != ""
			}) {
				t.Errorf("%s's Prepare %+v has no keeper for %s (image %s)", n, reqs[0].Containers, tk.Key(), tk.Image)
			}
			if !slices.ContainsFunc(reqs[0].Addresses, func(a wrestore.CheckAddress) bool {
				return a.Key == tk.Key() && a.IP == tk.Addresses[0].IP && slices.Equal(a.Networks, []string{tk.Addresses[0].Network})
			}) {
				t.Errorf("%s's Prepare %+v lacks %s's address %v: a keeper could take it", n, reqs[0].Addresses, tk.Key(), tk.Addresses)
			}
		}
	}
	if reqs := e.execs["lab-2"].Prepared(); len(reqs) > 0 {
		t.Errorf("the drained node got Prepare requests %+v, want none (nothing comes to it)", reqs)
	}
	requireNoKeepers(t, e)
}

// migrate --mode swarm --to NODE: only NODE may take the replacements, so only NODE
// keeps the moving tasks' networks, from before the placement constraint is added
// until the replacements run.
func TestMigrateSwarmModeKeepsNetworksOnTheTarget(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	before := bankOn(t, ctx, sw)
	var moving []stack.Task
	for n, ts := range before {
		if n != "lab-1" {
			moving = append(moving, ts...)
		}
	}
	if len(moving) == 0 {
		t.Fatalf("no bank task off lab-1: %+v", before)
	}
	holdStops(e, sw)
	w := watchKeepers(e, sw, 100*time.Millisecond)
	if _, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{ID: "mv-k", Stack: "bank", To: "lab-1", Mode: api.ModeSwarm}); err != nil {
		t.Fatalf("migrate --mode swarm --to lab-1: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if want := keepNames("mv-k", moving); fmt.Sprint(w.atStop["lab-1"]) != fmt.Sprint(want) {
		t.Errorf("when the constraint stopped the tasks, lab-1 held keepers %v, want %v", w.atStop["lab-1"], want)
	}
	for _, n := range []string{"lab-2", "lab-3"} {
		if reqs := e.execs[n].Prepared(); len(reqs) > 0 {
			t.Errorf("%s got Prepare requests %+v, want none (only lab-1 takes replacements)", n, reqs)
		}
	}
	requireNoKeepers(t, e)
}

// The wait for the keepers is bounded by the prepare wait: a node whose keepers never
// get ready delays the drain by that much, no more (a prepare-late progress event
// says so), and its keepers are released all the same.
func TestNodeDrainSwarmModeKeeperWaitIsBounded(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil, func(c *coordinator.Config) { c.MigratePrepareWait = 300 * time.Millisecond })
	holdStops(e, sw)
	e.execs["lab-3"].PrepareReady = func(ctx context.Context, _ worker.PreflightRequest) error {
		<-ctx.Done() // never ready
		return ctx.Err()
	}
	var mu sync.Mutex
	var phases []string
	sub, err := e.net.Connect().Subscribe(api.ProgressSubject("drain-late"), func(m *bus.Msg) {
		mu.Lock()
		phases = append(phases, string(m.Data))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	t0 := time.Now()
	if _, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-late", Node: "lab-2", Availability: api.AvailabilityDrain}); err != nil {
		t.Fatalf("node drain: %v", err)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("node drain took %s with a prepare wait of 300ms", d)
	}
	waitFor(t, "a prepare-late progress event naming lab-3", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(phases, "\n")
		return strings.Contains(all, `"phase":"prepare-late"`) && strings.Contains(all, "lab-3")
	})
	requireNoKeepers(t, e)
}

// A coordinator that died during a drain hold left its keepers journaled: the next
// one's recovery releases them on their nodes and deletes the journal (without it the
// nodes would hold them until their bound, minutes).
func TestRecoverReleasesTheDrainHoldsKeepers(t *testing.T) {
	e, _, _, ctx := nodeDrainEnv(t, nil)
	names := []string{restore.KeepName("dead-drain", "bank_holder.2"), restore.KeepName("dead-drain", "bank_holder.5")}
	for _, n := range []string{"lab-1", "lab-3"} {
		req := worker.PreflightRequest{Prepare: true}
		for i, k := range []string{"bank_holder.2", "bank_holder.5"} {
			req.Containers = append(req.Containers, wrestore.CheckContainer{Key: k, Name: names[i], Image: stack.FakeImage("bank_holder")})
		}
		if _, err := e.execs[n].Preflight(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.PutOperation(ctx, &store.Operation{ID: "keepers-dead-drain", Kind: restore.KindKeepers, Snapshot: "dead-drain",
		Mode: api.ModeSwarm, Step: restore.StepBegun, Nodes: []string{"lab-1", "lab-3"}, Kept: []string{"bank_holder.2", "bank_holder.5"},
		Coordinator: "dead", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecoverOperations(ctx); err != nil {
		t.Fatalf("recover: %v", err)
	}
	requireNoKeepers(t, e)
}

package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestRecoverInterruptedSwarmOperations: as TestRecoverInterruptedOperations, for a
// swarm-mode restore over a running stack and a swarm-mode migration: the coordinator
// dies right before or after each journaled step (and in the commit of the parked
// snapshot), and the next one releases, rolls back or rolls forward. Afterwards nothing
// is held, no placement is left on any node, the lock is free, the journal gone, and
// the stack runs: as before, put back with its state (a restore's checkpoint or a
// migration's snapshot as swarm tasks, bank_holder at its 5 replicas), or restored: never at 0 replicas with nothing running.
func TestRecoverInterruptedSwarmOperations(t *testing.T) {
	for _, kind := range []string{"restore", "migrate"} {
		for _, tc := range []struct {
			step   string
			before bool
			want   string
		}{
			{restore.StepBegun, false, released},
			{stepCommit, true, released},
			{restore.StepStopping, true, released},
			{restore.StepStopping, false, rolledBack},
			{restore.StepRestoring, false, rolledBack},
			{restore.StepRestored, true, rolledBack},
			{restore.StepRestored, false, forward},
		} {
			when := "after"
			if tc.before {
				when = "before"
			}
			t.Run(fmt.Sprintf("%s/%s-%s", kind, when, tc.step), func(t *testing.T) {
				testRecoverInterruptedSwarm(t, kind, tc.step, tc.before, tc.want)
			})
		}
	}
}

// placingStarts makes sw start each task the way the runtime wrapper does: from the
// set placed for its slot on its node, once the address map is there; a task without
// a placement starts fresh. It returns the set each slot's latest task started from
// ("" fresh), by SERVICE.SLOT.
func placingStarts(sw *stack.FakeSwarm, execs map[string]*worker.Fake) func() map[string]string {
	var mu sync.Mutex
	from := map[string]string{}
	sw.Start = func(tk stack.Task) (string, string, string) {
		ex := execs[tk.Node]
		if p := ex.PlacedTask(tk.Service, tk.Slot); p != nil && p.WaitMap && p.Addresses == nil {
			return "starting", "", ""
		}
		id := "ctr-" + tk.TaskID
		set := ""
		if ft := ex.StartTask(tk.Service, tk.Slot, id); ft != nil {
			set = ft.Set
		}
		mu.Lock()
		from[tk.Key()] = set
		mu.Unlock()
		return "running", id, ""
	}
	return func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for k, v := range from {
			out[k] = v
		}
		return out
	}
}

func testRecoverInterruptedSwarm(t *testing.T, kind, step string, before bool, want string) {
	cs := &crashStore{step: step, before: before, dead: make(chan struct{}), hold: make(chan struct{})}
	e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs })
	startedFrom := placingStarts(sw, e.execs)
	ctx := context.Background()
	if kind == "restore" {
		if _, err := e.snapshot("old"); err != nil {
			t.Fatal(err)
		}
	}
	cs.armed.Store(true)
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
	go func() {
		defer close(opDone)
		if kind == "migrate" {
			_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
		} else {
			_, _ = e.svc.Restore(opCtx, api.RestoreRequest{ID: "old", Mode: api.ModeSwarm})
		}
	}()
	select {
	case <-cs.dead:
	case <-opDone:
		t.Fatalf("the swarm-mode %s ended without reaching step %s (journal: %+v)", kind, step, cs.last)
	case <-time.After(15 * time.Second):
		t.Fatalf("the swarm-mode %s did not reach step %s within 15 s", kind, step)
	}
	stopDead()
	cs.mu.Lock()
	op := cs.last
	cs.mu.Unlock()
	if step != stepCommit && !(step == restore.StepBegun && before) && op.Step != "" && op.Step != restore.StepBegun && op.Mode != api.ModeSwarm {
		t.Errorf("journal at step %s records mode %q, want %q", op.Step, op.Mode, api.ModeSwarm)
	}
	stopNew := e.startMigrateCoordinator(sw, e.store)
	t.Cleanup(stopNew)
	waitForLong(t, 30*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q after the recovery (%v), want free", h, err)
	}
	heldNow := func() map[string][]string {
		out := map[string][]string{}
		for n, ex := range e.execs {
			if h := ex.Held(); len(h) > 0 {
				out[n] = h
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(heldNow()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if h := heldNow(); len(h) > 0 {
		t.Errorf("still held 10 s after the recovery: %v", h)
	}
	for n, ex := range e.execs {
		if p := ex.Placed(); len(p) > 0 {
			t.Errorf("placements left armed on %s after the recovery: %v", n, p)
		}
	}
	if want != forward && len(sw.Constraints) > 0 {
		t.Errorf("placement constraints left on the services after the recovery: %v", sw.Constraints)
	}
	standalone := map[string][]string{}
	for n, ex := range e.execs {
		if r := ex.Restored(); len(r) > 0 {
			sort.Strings(r)
			standalone[n] = r
		}
	}
	from := startedFrom()
	// fromSetsOf: every slot of bank_holder runs a task started from a set of snapshot id.
	fromSetsOf := func(id string) {
		t.Helper()
		m, err := e.store.Get(ctx, id)
		if err != nil {
			t.Fatalf("snapshot %q: %v", id, err)
		}
		sets := map[string]bool{}
		for _, c := range m.Containers {
			sets[node.SetID(m.ID, c.Key())] = true
		}
		for slot := 1; slot <= len(m.Containers); slot++ {
			k := fmt.Sprintf("bank_holder.%d", slot)
			if !sets[from[k]] {
				t.Errorf("task %s started from %q, want a set of %s (its state): started %v", k, from[k], id, from)
			}
		}
	}
	parked, snap := op.Parked, op.Snapshot
	switch want {
	case released:
		if r := sw.Replicas("bank_holder"); r != 5 {
			t.Errorf("bank_holder at %d replicas, want 5 (released: runs as before)", r)
		}
		for n, ex := range e.execs {
			if s := ex.Stopped(); len(s) > 0 {
				t.Errorf("%s: containers ended although nothing was to be stopped: %v", n, s)
			}
		}
		if len(standalone) > 0 || len(from) > 0 {
			t.Errorf("containers restored although the operation was released: standalone %v, tasks %v", standalone, from)
		}
	case rolledBack:
		m, _ := e.store.Get(ctx, snap)
		if m == nil || len(m.Restores) == 0 || m.Restores[len(m.Restores)-1].OK || !strings.Contains(m.Restores[len(m.Restores)-1].Error, "put the stack back") {
			t.Errorf("the rollback is not recorded on %s: %+v", snap, m)
		}
		// A swarm-mode restore's checkpoint, or a swarm-mode migration's snapshot,
		// goes back as swarm tasks: the service at its replicas, every task from the
		// parked snapshot (the migration's used to go back as standalone containers,
		// the service left at 0).
		if r := sw.Replicas("bank_holder"); r != 5 {
			t.Errorf("bank_holder at %d replicas after the rollback, want 5 (put back as swarm tasks)", r)
		}
		if parked == "" {
			t.Fatalf("the swarm-mode %s journaled no parked snapshot", kind)
		}
		fromSetsOf(parked)
		if len(standalone) > 0 {
			t.Errorf("standalone containers restored although the checkpoint went back as swarm tasks: %v", standalone)
		}
	case forward:
		if r := sw.Replicas("bank_holder"); r != 5 {
			t.Errorf("bank_holder at %d replicas, want 5 (restored as swarm tasks)", r)
		}
		fromSetsOf(snap)
		m, err := e.store.Get(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, r := range m.Restores {
			ok = ok || r.OK
		}
		if !ok {
			t.Errorf("the completed restore is not recorded on %s: %+v", snap, m.Restores)
		}
	}
}

// TestSwarmRestoreFailurePutsTheStackBack: a swarm-mode restore over a running stack
// checkpoints it first; when the restore fails after the stop (its tasks fail to
// start), the checkpoint is put back as swarm tasks: bank_holder at its 5 replicas,
// every task from the checkpoint, nothing held or placed, the lock and journal gone.
func TestSwarmRestoreFailurePutsTheStackBack(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.snapshot("old"); err != nil {
		t.Fatal(err)
	}
	old, err := e.store.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	oldSets := map[string]bool{}
	for _, c := range old.Containers {
		oldSets[node.SetID(old.ID, c.Key())] = true
	}
	startedFrom := placingStarts(sw, e.execs)
	placing := sw.Start
	sw.Start = func(tk stack.Task) (string, string, string) {
		if p := e.execs[tk.Node].PlacedTask(tk.Service, tk.Slot); p != nil && oldSets[p.Set] {
			return "failed", "", "starting container failed: swarmckpt-runtime: create: restore failed"
		}
		return placing(tk)
	}
	_, err = e.svc.Restore(ctx, api.RestoreRequest{ID: "old", Mode: api.ModeSwarm})
	if err == nil || !strings.Contains(err.Error(), "put back") {
		t.Fatalf("restore error %v, want a failure saying the stack was put back", err)
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas after the put-back, want 5", r)
	}
	ms, err := e.store.List(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	var before *store.Manifest
	for _, m := range ms {
		if strings.HasPrefix(m.Purpose, "before restore of old") {
			before = m
		}
	}
	if before == nil {
		t.Fatalf("no checkpoint of the running stack among %d snapshots", len(ms))
	}
	from := startedFrom()
	for _, c := range before.Containers {
		found := false
		for _, set := range from {
			found = found || set == node.SetID(before.ID, c.Key())
		}
		if !found {
			t.Errorf("%s of the checkpoint %s runs from no task (tasks started from %v)", c.Key(), before.ID, from)
		}
	}
	for n, ex := range e.execs {
		if h := ex.Held(); len(h) > 0 {
			t.Errorf("%s: still held after the put-back: %v", n, h)
		}
		if p := ex.Placed(); len(p) > 0 {
			t.Errorf("%s: placements left: %v", n, p)
		}
	}
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q (%v), want free", h, err)
	}
	if ops, err := e.store.ListOperations(ctx); err != nil || len(ops) != 0 {
		t.Errorf("journal left: %+v (%v)", ops, err)
	}
}

// TestSwarmRestoreStopFailsLeavesTheStackRunning: a swarm-mode restore whose stop fails
// (nothing scaled) lets the checkpoint's parked containers run on: nothing ended,
// nothing held, bank_holder still at 5, the lock and journal gone, and it says so.
func TestSwarmRestoreStopFailsLeavesTheStackRunning(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.snapshot("old"); err != nil {
		t.Fatal(err)
	}
	sw.FailStop = errors.New("manager unreachable")
	_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "old", Mode: api.ModeSwarm})
	if err == nil || !strings.Contains(err.Error(), "before anything was stopped") || !strings.Contains(err.Error(), "manager unreachable") {
		t.Fatalf("restore error %v, want one saying nothing was stopped, with the cause", err)
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas, want 5", r)
	}
	waitFor(t, "nothing held", func() bool {
		for _, ex := range e.execs {
			if len(ex.Held()) > 0 {
				return false
			}
		}
		return true
	})
	for n, ex := range e.execs {
		if s := ex.Stopped(); len(s) > 0 {
			t.Errorf("%s: containers ended although the stop failed: %v", n, s)
		}
	}
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q (%v), want free", h, err)
	}
	if ops, err := e.store.ListOperations(ctx); err != nil || len(ops) != 0 {
		t.Errorf("journal left: %+v (%v)", ops, err)
	}
}

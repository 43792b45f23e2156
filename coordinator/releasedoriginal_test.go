package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// stoppingHook is a coordinator's store that runs hook once, when a restore or
// migration journals its stop (after its pre-flight, before anything is stopped).
type stoppingHook struct {
	store.Store
	once sync.Once
	hook func()
}

func (h *stoppingHook) PutOperation(ctx context.Context, op *store.Operation) error {
	if op.Step == restore.StepStopping {
		h.once.Do(h.hook)
	}
	return h.Store.PutOperation(ctx, op)
}

// TestRollbackKeepsOriginalsReleasedAfterTheirDump (issue 21, fault seed 1793): a
// partial migration's moved containers (bank_holder.2 and .5, standalone on lab-2) are
// parked after their dump; one released before the stop ran on (its state is newer
// than the snapshot's). The stop cannot end it, and the rollback must keep it where it
// runs: never ended, removed, or replaced by its stale checkpoint (the fault campaign
// lost bank messages so). Only an original that was ended is put back from the
// snapshot, and the error says which was which.
func TestRollbackKeepsOriginalsReleasedAfterTheirDump(t *testing.T) {
	noneRestored := func(t *testing.T, e *env, nodes ...string) {
		t.Helper()
		for _, n := range nodes {
			if r := e.execs[n].Restored(); len(r) != 0 {
				t.Errorf("restored on %s: %v, want nothing (no duplicate of a kept original)", n, r)
			}
		}
	}
	t.Run("AgentRestarted", func(t *testing.T) {
		var e *env
		h := &stoppingHook{}
		h.hook = func() {
			// lab-2's agent restarts: it releases what it held (a killed one's
			// successor does, from its records) and knows no plan of the migration.
			e.cancel["lab-2"]()
			e.startAgent("lab-2")
			c := e.net.Connect()
			b, _ := json.Marshal(node.StopRequest{Snapshot: "none", Resume: true})
			waitFor(t, "lab-2's new agent answering", func() bool {
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.Request(cctx, node.StopSubject("lab-2"), b)
				return !errors.Is(err, bus.ErrNoResponders)
			})
		}
		e, _, _ = newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { h.Store = m; return h })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "rel1", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err == nil || !strings.Contains(err.Error(), "abandoned") || !strings.Contains(err.Error(), "runs on where it was") || !strings.Contains(err.Error(), "ctr2") {
			t.Fatalf("migration whose moved containers were released before its stop: %v; want it abandoned, naming them running on where they were", err)
		}
		ex := e.execs["lab-2"]
		for _, c := range []string{"ctr2", "ctr5"} {
			if slices.Contains(ex.Stopped(), c) || ex.Removed(c) {
				t.Errorf("%s was ended or removed (stopped %v, removed %v): it ran on after its release, its state is newer than the snapshot's", c, ex.Stopped(), ex.Removed(c))
			}
		}
		noneRestored(t, e, "lab-1", "lab-2", "lab-3")
		if h := e.held(); len(h) > 0 {
			t.Errorf("still held after the migration: %v", h)
		}
	})

	t.Run("OneReleasedAtItsDeadline", func(t *testing.T) {
		var e *env
		h := &stoppingHook{}
		h.hook = func() {
			// The worker's watchdog released ctr2 at its hold's deadline (a slow
			// coordinator); its agent still counts it parked. ctr5 stays parked.
			ex := e.execs["lab-2"]
			_ = ex.Thaw(context.Background(), "ctr2")
			_ = ex.Unlock(context.Background(), "ctr2", nil)
		}
		e, _, _ = newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { h.Store = m; return h })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "rel2", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err == nil || !strings.Contains(err.Error(), "put back where they were") || !strings.Contains(err.Error(), "bank_holder.5") ||
			!strings.Contains(err.Error(), "kept where they run") || !strings.Contains(err.Error(), "bank_holder.2") {
			t.Fatalf("migration with one original released at its deadline: %v; want bank_holder.5 put back and bank_holder.2 kept, named", err)
		}
		ex := e.execs["lab-2"]
		if slices.Contains(ex.Stopped(), "ctr2") || ex.Removed("ctr2") {
			t.Errorf("ctr2 was ended or removed: it ran on after its release, its state is newer than the snapshot's")
		}
		// ctr5, ended by the stop, is back on lab-2 from the snapshot; nothing else.
		if r := ex.Restored(); len(r) != 1 || !strings.HasPrefix(r[0], "bank_holder-5-") {
			t.Errorf("restored on lab-2: %v, want bank_holder.5 only", r)
		}
		noneRestored(t, e, "lab-1", "lab-3")
		if h := e.held(); len(h) > 0 {
			t.Errorf("still held after the migration: %v", h)
		}
	})

	t.Run("RecoveredByTheNextCoordinator", func(t *testing.T) {
		// The coordinator dies once it journaled the stop, before it stopped
		// anything; lab-2's agent restarts meanwhile (releasing the parked moved
		// containers: they run on). The next coordinator's recovery must keep them.
		cs := &crashStore{step: restore.StepStopping, dead: make(chan struct{}), hold: make(chan struct{})}
		e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs })
		opCtx, opCancel := context.WithCancel(context.Background())
		opDone := make(chan struct{})
		t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
		go func() {
			defer close(opDone)
			_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "rel3", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		}()
		select {
		case <-cs.dead:
		case <-opDone:
			t.Fatal("the partial migration ended without reaching step stopping")
		case <-time.After(15 * time.Second):
			t.Fatal("the partial migration did not reach step stopping within 15 s")
		}
		stopDead()
		e.cancel["lab-2"]()
		e.startAgent("lab-2")
		stopNew := e.startMigrateCoordinator(sw, e.store)
		t.Cleanup(stopNew)
		waitForLong(t, 20*time.Second, "the journal recovered", func() bool {
			ops, err := e.store.ListOperations(context.Background())
			return err == nil && len(ops) == 0
		})
		ex := e.execs["lab-2"]
		for _, c := range []string{"ctr2", "ctr5"} {
			if slices.Contains(ex.Stopped(), c) || ex.Removed(c) {
				t.Errorf("%s was ended or removed by the recovery: it ran on after its release, its state is newer than the snapshot's", c)
			}
		}
		noneRestored(t, e, "lab-1", "lab-2", "lab-3")
		if h := e.held(); len(h) > 0 {
			t.Errorf("still held after the recovery: %v", h)
		}
		m, err := e.store.Get(context.Background(), "rel3")
		if err != nil || len(m.Restores) == 0 || !strings.Contains(m.Restores[len(m.Restores)-1].Error, "kept where they run") {
			t.Errorf("the recovery's record on rel3 does not name the originals kept: %+v, %v", m, err)
		}
	})

	t.Run("WholeStack", func(t *testing.T) {
		// A whole-stack migration: lab-2's agent restarts before the stop, so its
		// containers run on; the others are ended by the stop. The rollback keeps
		// lab-2's and puts back only the ended ones, each on its own node.
		var e *env
		h := &stoppingHook{}
		h.hook = func() {
			e.cancel["lab-2"]()
			e.startAgent("lab-2")
			c := e.net.Connect()
			b, _ := json.Marshal(node.StopRequest{Snapshot: "none", Resume: true})
			waitFor(t, "lab-2's new agent answering", func() bool {
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.Request(cctx, node.StopSubject("lab-2"), b)
				return !errors.Is(err, bus.ErrNoResponders)
			})
		}
		e, _, _ = newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { h.Store = m; return h })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "rel4", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "kept where they run") || !strings.Contains(err.Error(), "bank_holder.2") || !strings.Contains(err.Error(), "bank_holder.5") {
			t.Fatalf("whole-stack migration whose containers on lab-2 were released before its stop: %v; want them named kept where they run", err)
		}
		ex := e.execs["lab-2"]
		for _, c := range []string{"ctr2", "ctr5"} {
			if slices.Contains(ex.Stopped(), c) || ex.Removed(c) {
				t.Errorf("%s was ended or removed: it ran on after its release, its state is newer than the snapshot's", c)
			}
		}
		noneRestored(t, e, "lab-2")
		for n, want := range map[string][]string{"lab-1": {"bank_holder-1-", "bank_holder-4-"}, "lab-3": {"bank_holder-3-"}} {
			r := e.execs[n].Restored()
			slices.Sort(r)
			if len(r) != len(want) {
				t.Errorf("restored on %s: %v, want %v (the ended originals back on their nodes)", n, r, want)
				continue
			}
			for i := range want {
				if !strings.HasPrefix(r[i], want[i]) {
					t.Errorf("restored on %s: %v, want %v (the ended originals back on their nodes)", n, r, want)
				}
			}
		}
		if h := e.held(); len(h) > 0 {
			t.Errorf("still held after the migration: %v", h)
		}
	})

	t.Run("EndedButItsAnswerLost", func(t *testing.T) {
		// The worker ended the moved containers, but the answer was lost with it
		// (killed): a repeated end fails ("container ... is exited"). They are gone,
		// frozen since their dump until then: the migration goes on from the
		// snapshot (fault seed 1792: counted unknown, nothing was put back).
		var e *env
		h := &stoppingHook{}
		h.hook = func() {
			ex := e.execs["lab-2"]
			ex.FailStop = errors.New("worker lab-2: container is exited: container: not running")
			ex.Gone("ctr2")
			ex.Gone("ctr5")
		}
		e, _, _ = newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { h.Store = m; return h })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "rel5", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err != nil {
			t.Fatalf("migration whose moved containers were ended with the answer lost: %v", err)
		}
		if res.Restore == nil || len(res.Restore.Targets) != 2 {
			t.Fatalf("restore %+v, want both moved containers restored", res.Restore)
		}
		for k, n := range res.Restore.Targets {
			r := e.execs[n].Restored()
			if !slices.ContainsFunc(r, func(c string) bool { return strings.HasPrefix(c, strings.ReplaceAll(k, ".", "-")+"-") }) {
				t.Errorf("%s not restored on its target %s: %v", k, n, r)
			}
		}
	})
}

package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestMigrateKeepsTheSourcesNetworks: a partial migration has the node its containers
// leave (lab-2) keep their networks too (Prepare: network keepers, under the names
// their put-back restores there) from before anything stops until it is over: when
// the moving containers stop there, the source holds keepers for both; a rollback's
// put-back, by the migration itself or by the next coordinator's recovery after a
// kill, finds them; once the migration committed or rolled back, no node holds any
// (released, not left to their bound). Without the sources' keepers a put-back met
// the node's removal of its overlay instance on the lab (fault seed 2).
func TestMigrateKeepsTheSourcesNetworks(t *testing.T) {
	names := func(id string) []string {
		return []string{
			restore.ContainerName(id, store.Container{Service: "bank_holder", Slot: 2}),
			restore.ContainerName(id, store.Container{Service: "bank_holder", Slot: 5}),
		}
	}
	// atStop records, per container stopped on a node, what that node held prepared.
	type atStop struct {
		mu   sync.Mutex
		held map[string][]string
	}
	watchStops := func(a *atStop) func(*worker.Fake) {
		return func(f *worker.Fake) {
			f.OnStop = func(c string) {
				a.mu.Lock()
				defer a.mu.Unlock()
				a.held[f.Node+"/"+c] = f.PreparedHolds()
			}
		}
	}
	requireHeldAtStop := func(t *testing.T, a *atStop, want []string) {
		t.Helper()
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, c := range []string{"ctr2", "ctr5"} {
			got, ok := a.held["lab-2/"+c]
			if !ok {
				t.Fatalf("%s was not stopped on lab-2 (stops seen: %v)", c, a.held)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("when %s stopped, lab-2 held keepers prepared for %v, want %v (the put-back's names)", c, got, want)
			}
		}
	}
	requireReleased := func(t *testing.T, e *env) {
		t.Helper()
		for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
			if h := e.execs[n].PreparedHolds(); len(h) > 0 {
				t.Errorf("%s still holds keepers prepared for %v after the migration ended", n, h)
			}
		}
	}
	requirePutBackKept := func(t *testing.T, e *env, want []string) {
		t.Helper()
		got := e.execs["lab-2"].RestoredKept()
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("put back on lab-2 with their keepers held: %v, want %v", got, want)
		}
	}

	t.Run("Committed", func(t *testing.T) {
		a := &atStop{held: map[string][]string{}}
		e, _ := newMigrateEnv(t, watchStops(a))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "keep1", Stack: "bank", From: "lab-2", Algorithm: "blocking"}); err != nil {
			t.Fatal(err)
		}
		requireHeldAtStop(t, a, names("keep1"))
		requireReleased(t, e)
	})

	t.Run("RolledBack", func(t *testing.T) {
		a := &atStop{held: map[string][]string{}}
		e, _ := newMigrateEnv(t, watchStops(a))
		e.execs["lab-3"].FailRestore[node.SetID("keep2", "bank_holder.2")] = errors.New("disk full")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "keep2", Stack: "bank", From: "lab-2", Algorithm: "blocking"}); err == nil {
			t.Fatal("migration whose restore fails on lab-3 succeeded")
		}
		requireHeldAtStop(t, a, names("keep2"))
		requirePutBackKept(t, e, names("keep2"))
		requireReleased(t, e)
	})

	t.Run("RecoveredAfterKill", func(t *testing.T) {
		// The coordinator dies once the stop is done (step restoring, journaled): the
		// next one puts the moved containers back on lab-2 (fault seed 2 on the lab).
		cs := &crashStore{step: restore.StepRestoring, dead: make(chan struct{}), hold: make(chan struct{})}
		a := &atStop{held: map[string][]string{}}
		e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs }, watchStops(a))
		opCtx, opCancel := context.WithCancel(context.Background())
		opDone := make(chan struct{})
		t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
		go func() {
			defer close(opDone)
			_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "keep3", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		}()
		select {
		case <-cs.dead:
		case <-opDone:
			t.Fatal("the partial migration ended without reaching step restoring")
		case <-time.After(15 * time.Second):
			t.Fatal("the partial migration did not reach step restoring within 15 s")
		}
		stopDead()
		stopNew := e.startMigrateCoordinator(sw, e.store)
		t.Cleanup(stopNew)
		waitForLong(t, 20*time.Second, "the journal recovered", func() bool {
			ops, err := e.store.ListOperations(context.Background())
			return err == nil && len(ops) == 0
		})
		requireHeldAtStop(t, a, names("keep3"))
		requirePutBackKept(t, e, names("keep3"))
		requireReleased(t, e)
	})
}

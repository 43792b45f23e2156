package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// TestMigratePartial: by default a migration moves only the containers that must
// move (those on --from NODE): only they are dumped and stopped, spread over the other
// nodes (bank_holder.2 and .5 of lab-2 go to different nodes), restored there; the
// others are never locked, frozen, dumped or stopped. The snapshot is partial and a
// restore of it is refused. A failed restore puts the moved ones back on lab-2.
func TestMigratePartial(t *testing.T) {
	moved := []string{"ctr2", "ctr5"} // bank_holder.2, .5 on lab-2 (bankNodes)
	t.Run("OnlyTheMovingContainers", func(t *testing.T) {
		e, _ := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "part1", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Snapshot == nil || !res.Snapshot.Partial || len(res.Snapshot.Containers) != 2 {
			t.Fatalf("snapshot %+v: want a partial one of the 2 moving containers", res.Snapshot)
		}
		want := map[string]string{"bank_holder.2": "lab-3", "bank_holder.5": "lab-1"}
		if res.Restore == nil || fmt.Sprint(res.Restore.Targets) != fmt.Sprint(want) {
			t.Fatalf("restore %+v: want targets %v (spread: not both on one node)", res.Restore, want)
		}
		for n, ex := range e.execs {
			for i := 1; i <= 5; i++ {
				c := fmt.Sprintf("ctr%d", i)
				dumps, stopped := ex.Dumps(c), slices.Contains(ex.Stopped(), c)
				if slices.Contains(moved, c) {
					if n == "lab-2" && (dumps != 1 || !stopped) {
						t.Errorf("moving %s on %s: %d dumps, stopped %v; want 1, true", c, n, dumps, stopped)
					}
					continue
				}
				if dumps != 0 || stopped || ex.LockedFor(c) != 0 {
					t.Errorf("staying %s on %s was touched: %d dumps, stopped %v, locked %v", c, n, dumps, stopped, ex.LockedFor(c))
				}
			}
			if h := ex.Held(); len(h) > 0 {
				t.Errorf("%s still holds %v", n, h)
			}
		}
		for k, n := range want {
			if r := e.execs[n].Restored(); len(r) != 1 || !strings.Contains(r[0], strings.ReplaceAll(k, ".", "-")) {
				t.Errorf("restored on %s: %v, want %s only", n, r, k)
			}
		}
		_, err = e.svc.Restore(ctx, api.RestoreRequest{ID: "part1"})
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "partial migration") {
			t.Errorf("restore of the partial snapshot: %v, want refused", err)
		}
	})

	t.Run("FailedRestorePutsTheMovedBack", func(t *testing.T) {
		e, _ := newMigrateEnv(t)
		e.execs["lab-3"].FailRestore[node.SetID("part2", "bank_holder.2")] = errors.New("disk full")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "part2", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err == nil || !strings.Contains(err.Error(), "put back where they were") {
			t.Fatalf("err = %v, want the moved containers put back", err)
		}
		if r := e.execs["lab-2"].Restored(); len(r) != 2 {
			t.Errorf("restored on lab-2 (their node): %v, want both moved containers back", r)
		}
		for _, n := range []string{"lab-1", "lab-3"} {
			if r := e.execs[n].Restored(); len(r) != 0 {
				t.Errorf("left restored on %s: %v", n, r)
			}
		}
	})

}

// TestRecoverInterruptedPartialMigration: a coordinator dies once a partial
// migration's stop is done (step restoring, journaled); the next one puts the moved
// containers (bank_holder.2 and .5 of lab-2) back on lab-2 from the migration's
// snapshot, and touches nothing else of the stack: no container of the other nodes is
// ended or restored, and the stack's services are not scaled.
func TestRecoverInterruptedPartialMigration(t *testing.T) {
	cs := &crashStore{step: restore.StepRestoring, dead: make(chan struct{}), hold: make(chan struct{})}
	e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs })
	ctx := context.Background()
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
	go func() {
		defer close(opDone)
		_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "pmig", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
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
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	m, err := e.store.Get(ctx, "pmig")
	if err != nil || !m.Partial {
		t.Fatalf("snapshot pmig: %+v, %v; want a partial one", m, err)
	}
	want := []string{restore.ContainerName("pmig", m.Containers[0]), restore.ContainerName("pmig", m.Containers[1])}
	slices.Sort(want)
	for n, ex := range e.execs {
		r := ex.Restored()
		slices.Sort(r)
		switch n {
		case "lab-2":
			if fmt.Sprint(r) != fmt.Sprint(want) {
				t.Errorf("restored on lab-2 after the recovery: %v, want the moved %v back", r, want)
			}
		default:
			if len(r) > 0 || len(ex.Stopped()) > 0 {
				t.Errorf("%s touched by the recovery of a partial migration: restored %v, stopped %v", n, r, ex.Stopped())
			}
		}
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas, want 5 (a partial migration's recovery scales nothing)", r)
	}
	if len(m.Restores) == 0 || !strings.Contains(m.Restores[len(m.Restores)-1].Error, "put the moved containers back") {
		t.Errorf("the recovery is not recorded on pmig: %+v", m.Restores)
	}
}

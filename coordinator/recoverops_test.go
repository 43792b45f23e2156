package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/worker"
)

// crashStore is a coordinator's store through which that coordinator "dies" at one
// journaled step of a restore or migration: when the journal is written at step
// (before: just before that write, else just after it), the writing goroutine stops
// there for good (until the test ends) and dead is closed, as if the process had been
// killed at that point. The journal as it was then is kept in last.
type crashStore struct {
	store.Store
	step   string
	before bool
	dead   chan struct{}
	hold   chan struct{}
	once   sync.Once
	armed  atomic.Bool // Commit crashes only once armed (the test's own snapshot first)
	mu     sync.Mutex
	last   store.Operation
}

func (c *crashStore) PutOperation(ctx context.Context, op *store.Operation) error {
	if c.before && op.Step == c.step {
		c.die()
		return errors.New("coordinator dead")
	}
	if err := c.Store.PutOperation(ctx, op); err != nil {
		return err
	}
	c.mu.Lock()
	c.last = *op
	c.mu.Unlock()
	if op.Step == c.step {
		c.die()
		return errors.New("coordinator dead")
	}
	return nil
}

// stepCommit, as crashStore's step, kills the coordinator in the commit of the parked
// snapshot (a migration's, or a restore's checkpoint): its containers are parked, the
// snapshot unfinished.
const stepCommit = "commit"

func (c *crashStore) Commit(ctx context.Context, m *store.Manifest, lock store.Lock) error {
	if c.step == stepCommit && c.armed.Load() {
		c.die()
		return errors.New("coordinator dead")
	}
	return c.Store.Commit(ctx, m, lock)
}

func (c *crashStore) die() {
	c.once.Do(func() { close(c.dead) })
	<-c.hold
}

// The outcomes a recovery may have.
const (
	released   = "released"    // nothing stopped: the stack runs as before
	rolledBack = "rolled back" // the parked snapshot runs again on its original nodes
	forward    = "forward"     // the restore completed
)

// TestRecoverInterruptedOperations: a coordinator dies (its store stops it) right
// before or after each journaled step of a migration and of a restore over a running
// stack, and in the commit of its parked snapshot (the migration's own, the restore's
// checkpoint: its containers parked, the snapshot unfinished); a coordinator started on the same store and agents releases, rolls back or
// rolls forward by restore.Decide's rule, and afterwards nothing is held, the stack's
// lock is free, the journal is gone, and either the stack runs as before, or its
// originals run again on their own nodes from the parked snapshot, or the restore is
// complete: never at 0 replicas with nothing running.
func TestRecoverInterruptedOperations(t *testing.T) {
	for _, kind := range []string{"migrate", "restore"} {
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
				testRecoverInterrupted(t, kind, tc.step, tc.before, tc.want)
			})
		}
	}
}

func testRecoverInterrupted(t *testing.T, kind, step string, before bool, want string) {
	cs := &crashStore{step: step, before: before, dead: make(chan struct{}), hold: make(chan struct{})}
	putBackHeld := &heldAt{held: map[string][]string{}}
	// The restore's own containers are named ...-<suffix>; any other restore is the
	// put-back's (the parked snapshot's names).
	suffix := strings.TrimPrefix(restore.ContainerName("old", store.Container{Service: "x", Slot: 1}), "x-1")
	var execs map[string]*worker.Fake
	e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs }, func(f *worker.Fake) {
		// At the put-back's first restore (any node), what the nodes still hold
		// prepared for the dead restore.
		f.OnRestore = func(name string) {
			if kind != "restore" || strings.HasSuffix(name, suffix) {
				return
			}
			putBackHeld.once.Do(func() {
				for n, ex := range execs {
					var h []string
					for _, c := range ex.PreparedHolds() {
						if strings.HasSuffix(c, suffix) {
							h = append(h, c)
						}
					}
					if len(h) > 0 {
						putBackHeld.set(n, h)
					}
				}
			})
		}
	})
	execs = e.execs
	ctx := context.Background()
	if kind == "restore" {
		if _, err := e.snapshot("old"); err != nil {
			t.Fatal(err)
		}
	}
	cs.armed.Store(true)
	// The dead coordinator's operation: its goroutine ends when the test does.
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
	go func() {
		defer close(opDone)
		if kind == "migrate" {
			_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		} else {
			_, _ = e.svc.Restore(opCtx, api.RestoreRequest{ID: "old"})
		}
	}()
	select {
	case <-cs.dead:
	case <-opDone:
		t.Fatalf("the %s ended without reaching step %s", kind, step)
	case <-time.After(15 * time.Second):
		t.Fatalf("the %s did not reach step %s within 15 s", kind, step)
	}
	stopDead()
	cs.mu.Lock()
	op := cs.last
	cs.mu.Unlock()
	// A new coordinator on the same store and agents (the dead one's lock is still
	// there: its lease would outlive the restart).
	stopNew := e.startMigrateCoordinator(sw, e.store)
	t.Cleanup(stopNew)
	waitForLong(t, 20*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q after the recovery (%v), want free", h, err)
	}
	// The agents release what the recovery let go on their own goroutines: poll.
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
	// The network keepers the dead coordinator had its targets prepare are released
	// by the recovery, not left to their 4-minute bound: one given a stopped
	// container's address held it against that container's put-back (fault seed 1234).
	for n, ex := range e.execs {
		if h := ex.PreparedHolds(); len(h) > 0 {
			t.Errorf("%s still holds network keepers prepared for %v after the recovery", n, h)
		}
	}
	if want == rolledBack {
		// Before the put-back every live node's keepers give up the stack's addresses
		// (a Prepare without containers): one on any node given a stopped original's
		// address would hold it against that original's put-back.
		for n, ex := range e.execs {
			if !slices.ContainsFunc(ex.Prepared(), func(r worker.PreflightRequest) bool {
				return len(r.Containers) == 0 && len(r.Addresses) > 0
			}) {
				t.Errorf("%s was not asked to free the stack's addresses from its keepers before the put-back", n)
			}
		}
	}
	if kind == "restore" && want == rolledBack {
		for n, h := range putBackHeld.snapshot() {
			t.Errorf("%s held keepers prepared for the dead restore (%v) when the put-back began: one may hold a put-back container's address", n, h)
		}
	}
	restored := map[string][]string{}
	for n, ex := range e.execs {
		if r := ex.Restored(); len(r) > 0 {
			sort.Strings(r)
			restored[n] = r
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
		if len(restored) > 0 {
			t.Errorf("containers restored although the operation was released: %v", restored)
		}
	case rolledBack:
		if r := sw.Replicas("bank_holder"); r != 0 {
			t.Errorf("bank_holder at %d replicas, want 0 (the originals put back as standalone containers)", r)
		}
		pm, err := e.store.Get(ctx, parked)
		if err != nil {
			t.Fatalf("parked snapshot %q: %v", parked, err)
		}
		wantOn := map[string][]string{}
		for _, c := range pm.Containers {
			wantOn[c.Node] = append(wantOn[c.Node], restore.ContainerName(pm.ID, c))
		}
		for n := range wantOn {
			sort.Strings(wantOn[n])
		}
		if fmt.Sprint(restored) != fmt.Sprint(wantOn) {
			t.Errorf("after the rollback restored %v, want the parked %s on its original nodes: %v", restored, parked, wantOn)
		}
		m, _ := e.store.Get(ctx, snap)
		if m == nil || len(m.Restores) == 0 || m.Restores[len(m.Restores)-1].OK || !strings.Contains(m.Restores[len(m.Restores)-1].Error, "put the stack back") {
			t.Errorf("the rollback is not recorded on %s: %+v", snap, m)
		}
	case forward:
		if r := sw.Replicas("bank_holder"); r != 0 {
			t.Errorf("bank_holder at %d replicas, want 0 (restored as standalone containers)", r)
		}
		m, err := e.store.Get(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		wantOn := map[string][]string{}
		for _, c := range m.Containers {
			wantOn[op.Targets[c.Key()]] = append(wantOn[op.Targets[c.Key()]], restore.ContainerName(m.ID, c))
		}
		for n := range wantOn {
			sort.Strings(wantOn[n])
		}
		if fmt.Sprint(restored) != fmt.Sprint(wantOn) {
			t.Errorf("after rolling forward restored %v, want %s on its targets: %v", restored, snap, wantOn)
		}
		if !slices.ContainsFunc(m.Restores, func(r store.Restore) bool { return r.OK }) {
			t.Errorf("the completed restore is not recorded on %s: %+v", snap, m.Restores)
		}
	}
}

// heldAt records, once, what nodes held at one moment.
type heldAt struct {
	once sync.Once
	mu   sync.Mutex
	held map[string][]string
}

func (h *heldAt) set(n string, v []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[n] = v
}

func (h *heldAt) snapshot() map[string][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.held)
}

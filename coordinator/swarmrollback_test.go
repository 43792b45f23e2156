package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// failingStarts makes sw start tasks as the runtime wrapper does (placingStarts), except
// that a task placed with a set of snapshot id fails to start while fail says so (it is
// given the number of such starts so far, from 1). It returns what placingStarts does.
func failingStarts(e *env, sw *stack.FakeSwarm, id string, fail func(n int64) bool) func() map[string]string {
	startedFrom := placingStarts(sw, e.execs)
	placing := sw.Start
	var n atomic.Int64
	sw.Start = func(tk stack.Task) (string, string, string) {
		if p := e.execs[tk.Node].PlacedTask(tk.Service, tk.Slot); p != nil && strings.HasPrefix(p.Set, node.SetID(id, "")) && fail(n.Add(1)) {
			return "failed", "", "starting container failed: swarmckpt-runtime: create: restore failed"
		}
		return placing(tk)
	}
	return startedFrom
}

// requireReleased: nothing held or placed on any node, no constraint left on the
// services, the stack's lock free and no journal left.
func (e *env) requireReleased(t *testing.T, sw *stack.FakeSwarm) {
	t.Helper()
	ctx := context.Background()
	for n, ex := range e.execs {
		if h := ex.Held(); len(h) > 0 {
			t.Errorf("%s: still held after the rollback: %v", n, h)
		}
		if p := ex.Placed(); len(p) > 0 {
			t.Errorf("%s: placements left armed after the rollback: %v", n, p)
		}
	}
	if len(sw.Constraints) > 0 {
		t.Errorf("placement constraints left on the services: %v", sw.Constraints)
	}
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q (%v), want free", h, err)
	}
	if ops, err := e.store.ListOperations(ctx); err != nil || len(ops) != 0 {
		t.Errorf("journal left: %+v (%v)", ops, err)
	}
}

// standaloneRestored lists the standalone containers restored on each node.
func (e *env) standaloneRestored() map[string][]string {
	out := map[string][]string{}
	for n, ex := range e.execs {
		if r := ex.Restored(); len(r) > 0 {
			out[n] = r
		}
	}
	return out
}

// TestSwarmMigrateFailureRollsBackAsSwarmTasks: a swarm-mode migration whose restore
// fails after the stop (a task on the target fails to start from its set) puts its
// snapshot back as swarm tasks: bank_holder at its 5 replicas again, every task started
// from its container's set of the migration's snapshot (its state), no standalone
// container, nothing held or placed, no constraint left, lock and journal gone. (It
// used to put the originals back as standalone containers, the services left at 0:
// the stack no longer managed by swarm.)
func TestSwarmMigrateFailureRollsBackAsSwarmTasks(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	startedFrom := failingStarts(e, sw, "mig", func(n int64) bool { return n == 1 }) // the migration's first task
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "originals restored where they were, as swarm tasks") || !strings.Contains(err.Error(), "restore failed") {
		t.Fatalf("migrate with a task failing on the target: %v; want a failure saying the stack was put back as swarm tasks, with the cause", err)
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas after the rollback, want 5 (put back as swarm tasks)", r)
	}
	from := startedFrom()
	for slot := 1; slot <= 5; slot++ {
		k := fmt.Sprintf("bank_holder.%d", slot)
		if !strings.HasPrefix(from[k], node.SetID("mig", "")) {
			t.Errorf("task %s started from %q, want a set of snapshot mig (its state): %v", k, from[k], from)
		}
	}
	if s := e.standaloneRestored(); len(s) > 0 {
		t.Errorf("standalone containers restored although the snapshot went back as swarm tasks: %v", s)
	}
	e.requireReleased(t, sw)
}

// TestSwarmMigrateRollbackKeepsOffTheTarget: the stack ran on lab-1 and lab-2 only; a
// swarm-mode migration --to lab-3 fails there. The put-back as swarm tasks runs where
// the stack ran: swarm is kept off lab-3 by a constraint for the put-back (which would
// fail there again), removed once the tasks run.
func TestSwarmMigrateRollbackKeepsOffTheTarget(t *testing.T) {
	st := bankStack()
	for i := range st.Containers {
		st.Containers[i].Node = []string{"lab-1", "lab-2"}[i%2]
	}
	e, sw, _ := newMigrateEnvConfig(t, nil, func(cfg *coordinator.Config) { cfg.Resolver = stack.Static{"bank": st} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var onTarget atomic.Int64
	startedFrom := placingStarts(sw, e.execs)
	placing := sw.Start
	sw.Start = func(tk stack.Task) (string, string, string) {
		if tk.Node == "lab-3" {
			onTarget.Add(1)
			return "failed", "", "starting container failed: swarmckpt-runtime: create: restore failed"
		}
		return placing(tk)
	}
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "originals restored where they were, as swarm tasks") {
		t.Fatalf("migrate failing on lab-3: %v; want a failure saying the stack was put back as swarm tasks", err)
	}
	if onTarget.Load() == 0 {
		t.Fatal("no task was started on lab-3: the migration did not fail where the test makes it fail")
	}
	tasks, err := sw.Tasks(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, tk := range tasks {
		if tk.DesiredState != "running" {
			continue
		}
		running++
		if tk.Node != "lab-1" && tk.Node != "lab-2" {
			t.Errorf("put-back task %s runs on %s, want lab-1 or lab-2 (where the stack ran)", tk.Key(), tk.Node)
		}
	}
	if running != 5 || sw.Replicas("bank_holder") != 5 {
		t.Errorf("%d tasks running, bank_holder at %d replicas; want 5 and 5", running, sw.Replicas("bank_holder"))
	}
	for k, set := range startedFrom() {
		if !strings.HasPrefix(set, node.SetID("mig", "")) {
			t.Errorf("task %s started from %q, want a set of snapshot mig", k, set)
		}
	}
	if s := e.standaloneRestored(); len(s) > 0 {
		t.Errorf("standalone containers restored although the snapshot went back as swarm tasks: %v", s)
	}
	e.requireReleased(t, sw)
}

// TestSwarmMigrateRollbackFallsBack: when the put-back as swarm tasks fails too, the
// originals are restored where they were as standalone containers (the services at
// 0); when that fails as well, the services start again at the replicas they had,
// fresh (they used to be left at 0, nothing running), and the error says so.
func TestSwarmMigrateRollbackFallsBack(t *testing.T) {
	t.Run("Standalone", func(t *testing.T) {
		e, sw := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		failingStarts(e, sw, "mig", func(int64) bool { return true })
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "originals restored where they were") || !strings.Contains(err.Error(), "back as swarm tasks failed") {
			t.Fatalf("migrate whose put-back as swarm tasks fails: %v", err)
		}
		want := map[string]int{"lab-1": 2, "lab-2": 2, "lab-3": 1}
		got := e.standaloneRestored()
		for n, k := range want {
			if len(got[n]) != k {
				t.Errorf("%s: %d standalone containers restored, want %d (the originals where they were): %v", n, len(got[n]), k, got)
			}
		}
		if r := sw.Replicas("bank_holder"); r != 0 {
			t.Errorf("bank_holder at %d replicas beside the put-back standalone containers, want 0", r)
		}
		e.requireReleased(t, sw)
	})
	t.Run("Fresh", func(t *testing.T) {
		e, sw := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		failingStarts(e, sw, "mig", func(int64) bool { return true })
		e.execs["lab-3"].FailRestore = map[string]error{node.SetID("mig", "bank_holder.3"): errors.New("criu: boom")}
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "started again fresh from their images") || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("migrate whose put-backs all fail: %v", err)
		}
		if r := sw.Replicas("bank_holder"); r != 5 {
			t.Errorf("bank_holder at %d replicas after every put-back failed, want 5 (started again)", r)
		}
		e.requireReleased(t, sw)
	})
}

// TestSwarmMigrateFailsAtOnceWhenSwarmShutsTheFailedTaskDown: on a real swarm a task
// whose restore failed gets desired state shutdown at once, and its replacement may be
// held back (restart delay, or no other node the constraint allows): the migration
// must see the failure at once (FailedTasks), not wait out its 2-minute task timeout (the
// lab saw `X on "" is ""` after 2 min), and roll back as swarm tasks.
func TestSwarmMigrateFailsAtOnceWhenSwarmShutsTheFailedTaskDown(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sw.ShutdownFailed = true
	failingStarts(e, sw, "mig", func(n int64) bool { return n == 1 })
	start := time.Now()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "originals restored where they were, as swarm tasks") || !strings.Contains(err.Error(), "failed on lab-3: starting container failed") {
		t.Fatalf("migrate whose failed task swarm shut down: %v (after %s); want the task's failure and a put-back as swarm tasks", err, time.Since(start))
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas after the rollback, want 5", r)
	}
	e.requireReleased(t, sw)
}

// TestFailedTasks: the failed tasks of planned slots created since the scale-up are
// found whatever their desired state, newest first; older ones, other services and
// other states are not.
func TestFailedTasks(t *testing.T) {
	plan := []restore.SlotPlan{{Service: "a", Slot: 1}, {Service: "a", Slot: 2}}
	now := time.Now()
	since := now.Add(-time.Second)
	tasks := []stack.Task{
		{Service: "a", Slot: 1, State: "failed", DesiredState: "shutdown", CreatedAt: now.Add(-time.Hour)},
		{Service: "b", Slot: 1, State: "failed", DesiredState: "shutdown", CreatedAt: now},
		{Service: "a", Slot: 2, State: "shutdown", DesiredState: "shutdown", CreatedAt: now},
		{Service: "a", Slot: 1, State: "running", DesiredState: "running", CreatedAt: now},
	}
	if f := restore.FailedTasks(plan, tasks, since); len(f) != 0 {
		t.Fatalf("found %v, want none", f)
	}
	tasks = append(tasks, stack.Task{Service: "a", Slot: 2, TaskID: "t9", State: "failed", DesiredState: "shutdown", CreatedAt: now},
		stack.Task{Service: "a", Slot: 2, TaskID: "t10", State: "failed", DesiredState: "running", CreatedAt: now.Add(time.Second)})
	if f := restore.FailedTasks(plan, tasks, since); len(f) != 1 || len(f["a.2"]) != 2 || f["a.2"][0].TaskID != "t10" || f["a.2"][1].TaskID != "t9" {
		t.Fatalf("got %v, want a.2's tasks t10 and t9", f)
	}
}

// TestSwarmMigrateFailsOnTheFirstFailedTask: swarm replaces a task whose restore
// failed (desired state shutdown at once), and the replacement would run: the
// migration fails on that first failure all the same (all or nothing; in the lab the
// retry of a deterministic failure failed again ~60 s later) and rolls back as swarm
// tasks. It used to see the failure only if a poll
// caught the failed task current, and otherwise went on with the replacement.
func TestSwarmMigrateFailsOnTheFirstFailedTask(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sw.ShutdownFailed, sw.ReplaceFailed = true, true
	// bank_holder.1's first task fails; its replacement would run.
	var attempts atomic.Int64
	startedFrom := placingStarts(sw, e.execs)
	placing := sw.Start
	sw.Start = func(tk stack.Task) (string, string, string) {
		if tk.Slot == 1 && tk.Node == "lab-3" && attempts.Add(1) == 1 {
			return "failed", "", "starting container failed: swarmckpt-runtime: create: restore failed"
		}
		return placing(tk)
	}
	start := time.Now()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "originals restored where they were, as swarm tasks") || !strings.Contains(err.Error(), "bank_holder.1") || !strings.Contains(err.Error(), "failed on lab-3: starting container failed") {
		t.Fatalf("migrate whose first task fails: %v (after %s); want that failure and a put-back as swarm tasks", err, time.Since(start))
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas after the rollback, want 5", r)
	}
	for k, set := range startedFrom() {
		if !strings.HasPrefix(set, node.SetID("mig", "")) {
			t.Errorf("task %s started from %q, want a set of snapshot mig", k, set)
		}
	}
	e.requireReleased(t, sw)
}

// TestSwarmMigrateRollbackInterruptedIsRecovered: the coordinator dies in the middle
// of a swarm-mode migration's rollback, once the put-back's tasks are being started
// (the stack ran on lab-1 and lab-2; the migration failed on lab-3). The put-back's
// candidate nodes and its constraint keeping swarm off lab-3 were journaled before it
// began, and the next coordinator rolls back from the journal the same way: bank_holder
// at 5 replicas, every task from the migration's snapshot, none on lab-3, no
// constraint left, nothing held or placed, lock and journal gone.
func TestSwarmMigrateRollbackInterruptedIsRecovered(t *testing.T) {
	st := bankStack()
	for i := range st.Containers {
		st.Containers[i].Node = []string{"lab-1", "lab-2"}[i%2]
	}
	var (
		mu      sync.Mutex
		journal []store.Operation
	)
	rec := func(m *store.Memory) store.Store {
		return &recordingStore{Store: m, put: func(op store.Operation) { mu.Lock(); journal = append(journal, op); mu.Unlock() }}
	}
	e, sw, stopDead := newMigrateEnvConfig(t, rec, func(cfg *coordinator.Config) { cfg.Resolver = stack.Static{"bank": st} })
	ctx := context.Background()
	startedFrom := placingStarts(sw, e.execs)
	placing := sw.Start
	dead, hold := make(chan struct{}), make(chan struct{})
	var died sync.Once
	sw.Start = func(tk stack.Task) (string, string, string) {
		if tk.Node == "lab-3" {
			return "failed", "", "starting container failed: swarmckpt-runtime: create: restore failed"
		}
		blocked := false
		died.Do(func() { blocked = true })
		if blocked { // the first task of the put-back: the coordinator dies here
			close(dead)
			<-hold
		}
		return placing(tk)
	}
	opDone := make(chan struct{})
	t.Cleanup(func() { close(hold); <-opDone })
	go func() {
		defer close(opDone)
		_, _ = e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
	}()
	select {
	case <-dead:
	case <-opDone:
		t.Fatal("the migration ended without putting its snapshot back as swarm tasks")
	case <-time.After(15 * time.Second):
		t.Fatal("the migration's rollback did not start the put-back's tasks within 15 s")
	}
	stopDead()
	mu.Lock()
	last := journal[len(journal)-1]
	mu.Unlock()
	if !slices.Contains(last.Nodes, "lab-1") || !slices.Contains(last.Nodes, "lab-2") || !slices.Contains(last.Constraints, "node.hostname!=lab-3") {
		t.Errorf("journal before the put-back: nodes %v, constraints %v; want lab-1 and lab-2 among the nodes and node.hostname!=lab-3 among the constraints", last.Nodes, last.Constraints)
	}
	stopNew := e.startMigrateCoordinator(sw, e.store, func(cfg *coordinator.Config) { cfg.Resolver = stack.Static{"bank": st} })
	t.Cleanup(stopNew)
	waitForLong(t, 30*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas after the recovery, want 5", r)
	}
	tasks, err := sw.Tasks(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.DesiredState == "running" && tk.Node == "lab-3" {
			t.Errorf("put-back task %s runs on lab-3, where the migration failed", tk.Key())
		}
	}
	from := startedFrom()
	for slot := 1; slot <= 5; slot++ {
		k := fmt.Sprintf("bank_holder.%d", slot)
		if !strings.HasPrefix(from[k], node.SetID("mig", "")) {
			t.Errorf("task %s started from %q, want a set of snapshot mig: %v", k, from[k], from)
		}
	}
	if s := e.standaloneRestored(); len(s) > 0 {
		t.Errorf("standalone containers restored although the snapshot went back as swarm tasks: %v", s)
	}
	waitFor(t, "nothing held", func() bool {
		for _, ex := range e.execs {
			if len(ex.Held()) > 0 {
				return false
			}
		}
		return true
	})
	e.requireReleased(t, sw)
}

// recordingStore passes every journal write to put.
type recordingStore struct {
	store.Store
	put func(op store.Operation)
}

func (r *recordingStore) PutOperation(ctx context.Context, op *store.Operation) error {
	if err := r.Store.PutOperation(ctx, op); err != nil {
		return err
	}
	r.put(*op)
	return nil
}

package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
)

// replacingSwarm is a FakeSwarm that acts as swarm does when a task's container
// ends: the task ends, and (its service not scaled down) a replacement of its slot
// runs on the first node that is not paused. Its replicas are its own (the
// embedded fake's tasks stay the stack's first ones). With dieAtScaleDown, its
// coordinator "dies" (dead closed, then blocked until hold is closed, nothing
// scaled) at the first scale-down: a kill -9 after a partial migration ended the
// moved tasks and before it scaled their service down (fault seed 98).
type replacingSwarm struct {
	*stack.FakeSwarm
	execs map[string]*worker.Fake // the nodes' fake workers: whose containers ended

	mu             sync.Mutex
	replicas       map[string]uint64
	prior          map[string]uint64
	dieAtScaleDown bool
	failScaleDowns int // scale-downs that fail (nothing scaled), first ones
	dead, hold     chan struct{}
	once           sync.Once
}

func (r *replacingSwarm) ServiceReplicas(context.Context, string) (map[string]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range r.replicas {
		out[k] = v
	}
	return out, nil
}

func (r *replacingSwarm) ScaleServices(_ context.Context, _ string, replicas map[string]uint64, _ []string) error {
	r.mu.Lock()
	die := false
	for s, n := range replicas {
		die = die || n < r.replicas[s]
	}
	if die && r.failScaleDowns > 0 {
		r.failScaleDowns--
		r.mu.Unlock()
		return fmt.Errorf("fake swarm: the manager did not answer")
	}
	die = die && r.dieAtScaleDown
	if die {
		r.mu.Unlock()
		r.once.Do(func() { close(r.dead) })
		<-r.hold
		return fmt.Errorf("the coordinator was killed")
	}
	for s, n := range replicas {
		r.replicas[s] = n
	}
	r.mu.Unlock()
	return nil
}

// Tasks: the stack's first tasks, those whose container (ctrSLOT) ended shut down,
// each with a replacement on the first active node while its service keeps the
// replicas it had (a scale-down by the moved slots removes the replacements).
func (r *replacingSwarm) Tasks(ctx context.Context, name string) ([]stack.Task, error) {
	ts, err := r.FakeSwarm.Tasks(ctx, name)
	if err != nil {
		return nil, err
	}
	avail, _ := r.NodeAvailabilities(ctx)
	active := ""
	for _, n := range r.Nodes {
		if active == "" && avail[n] == stack.AvailabilityActive {
			active = n
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(ts)
	for i, t := range ts {
		ex := r.execs[t.Node]
		if ex == nil || !slices.Contains(ex.Stopped(), fmt.Sprintf("ctr%d", t.Slot)) {
			continue
		}
		out[i].State, out[i].DesiredState = "shutdown", "shutdown"
		repl := stack.Task{Service: t.Service, Slot: t.Slot, TaskID: fmt.Sprintf("repl%d", t.Slot), Node: active, NodeID: active,
			DesiredState: "running", State: "running", ContainerID: fmt.Sprintf("fresh%d", t.Slot)}
		if r.replicas[t.Service] < r.prior[t.Service] {
			repl.DesiredState, repl.State = "shutdown", "shutdown"
		}
		out = append(out, repl)
	}
	return out, nil
}

// runningSlots counts, per slot of bank_holder, the swarm tasks that run.
func (r *replacingSwarm) runningSlots(t *testing.T) map[int]int {
	t.Helper()
	ts, err := r.Tasks(context.Background(), "bank")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, tk := range ts {
		if tk.State == "running" && tk.DesiredState == "running" {
			out[tk.Slot]++
		}
	}
	return out
}

// TestRecoverFinishesTheMoveOut: a partial migration --to lab-3 ends the moved
// holders (lab-1's and lab-2's, those nodes paused) and its coordinator dies before
// the scale-down: swarm replaces them on lab-3. The next coordinator must take the
// moved slots out of swarm's hands (scale bank_holder down by them: its
// replacements go) before it puts the moved holders back on their nodes, with their
// state: one holder per slot. Before the fix the put-back ran beside swarm's fresh
// replacements ("holder N answered twice": money created, fault seed 98).
func TestRecoverFinishesTheMoveOut(t *testing.T) {
	rs := &replacingSwarm{dieAtScaleDown: true, dead: make(chan struct{}), hold: make(chan struct{}),
		replicas: map[string]uint64{"bank_holder": 5}, prior: map[string]uint64{"bank_holder": 5}}
	useRS := func(c *coordinator.Config) {
		if rs.FakeSwarm == nil {
			rs.FakeSwarm = c.Stopper.(*stack.FakeSwarm)
		}
		c.Stopper = rs
		st := bankStack()
		for i := range st.Containers {
			st.Containers[i].TaskID = fmt.Sprintf("task%d", i+1)
		}
		c.Resolver = stack.Static{"bank": st}
	}
	e, sw, stopDead := newMigrateEnvConfig(t, nil, useRS)
	rs.mu.Lock()
	rs.execs = e.execs
	rs.mu.Unlock()
	ctx := context.Background()
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	t.Cleanup(func() { opCancel(); close(rs.hold); <-opDone })
	go func() {
		defer close(opDone)
		_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "moveout1", Stack: "bank", To: "lab-3", Algorithm: "blocking"})
	}()
	select {
	case <-rs.dead:
	case <-opDone:
		t.Fatal("the partial migration ended without scaling bank_holder down")
	case <-time.After(20 * time.Second):
		t.Fatal("the partial migration did not scale bank_holder down within 20 s")
	}
	ops, err := e.store.ListOperations(ctx)
	if err != nil || len(ops) != 1 || fmt.Sprint(ops[0].Ending) != "[bank_holder]" || ops[0].Stopped["bank_holder"] != 5 {
		t.Fatalf("journal when the coordinator dies: %+v (%v), want one operation ending bank_holder's moved tasks, its 5 replicas journaled", ops, err)
	}
	if got := rs.runningSlots(t); fmt.Sprint(got) != "map[1:1 2:1 3:1 4:1 5:1]" {
		t.Fatalf("swarm's running tasks by slot when the coordinator dies: %v, want one each (the moved ones replaced on lab-3)", got)
	}
	stopDead()
	rs.mu.Lock()
	rs.dieAtScaleDown = false
	rs.mu.Unlock()
	stopNew := e.startMigrateCoordinator(sw, e.store, useRS)
	t.Cleanup(stopNew)
	waitForLong(t, 60*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	if got, _ := rs.ServiceReplicas(ctx, "bank"); got["bank_holder"] != 1 {
		t.Errorf("bank_holder at %d replicas after the recovery, want 1 (5 less the 4 moved slots, put back as standalone containers)", got["bank_holder"])
	}
	if got := rs.runningSlots(t); fmt.Sprint(got) != "map[3:1]" {
		t.Errorf("swarm's running tasks by slot after the recovery: %v, want only slot 3's (the staying one): a replacement of a moved slot runs beside its put-back", got)
	}
	for n, slots := range map[string][]int{"lab-1": {1, 4}, "lab-2": {2, 5}} {
		var want []string
		for _, slot := range slots {
			want = append(want, restore.ContainerName("moveout1", store.Container{Service: "bank_holder", Slot: slot}))
		}
		got := e.execs[n].Restored()
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restored on %s after the recovery: %v, want the moved %v back, with their state", n, got, want)
		}
	}
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		if a, _ := sw.NodeAvailability(ctx, n); a != stack.AvailabilityActive {
			t.Errorf("%s is %q after the recovery, want active", n, a)
		}
	}
}

// TestFailedScaleDownPutsBackWithoutDuplicates: a partial migration --to lab-3 ends
// the moved holders, and swarm's manager does not answer its scale-down: the
// migration fails and puts the moved holders back on their nodes. It first takes
// the moved slots out of swarm's hands (the scale-down again), so that no fresh
// replacement of a moved slot runs beside its put-back (fault seed 98's duplicate,
// on the migration's own rollback).
func TestFailedScaleDownPutsBackWithoutDuplicates(t *testing.T) {
	rs := &replacingSwarm{failScaleDowns: 1, replicas: map[string]uint64{"bank_holder": 5}, prior: map[string]uint64{"bank_holder": 5}}
	e, sw, _ := newMigrateEnvConfig(t, nil, func(c *coordinator.Config) {
		rs.FakeSwarm = c.Stopper.(*stack.FakeSwarm)
		c.Stopper = rs
		st := bankStack()
		for i := range st.Containers {
			st.Containers[i].TaskID = fmt.Sprintf("task%d", i+1)
		}
		c.Resolver = stack.Static{"bank": st}
	})
	rs.mu.Lock()
	rs.execs = e.execs
	rs.mu.Unlock()
	ctx := context.Background()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "scalefail1", Stack: "bank", To: "lab-3", Algorithm: "blocking"})
	if err == nil {
		t.Fatal("the migration succeeded although its scale-down failed")
	}
	if got, _ := rs.ServiceReplicas(ctx, "bank"); got["bank_holder"] != 1 {
		t.Errorf("bank_holder at %d replicas after the rollback, want 1 (5 less the 4 moved slots, put back as standalone containers)", got["bank_holder"])
	}
	if got := rs.runningSlots(t); fmt.Sprint(got) != "map[3:1]" {
		t.Errorf("swarm's running tasks by slot after the rollback: %v, want only slot 3's: a replacement of a moved slot runs beside its put-back", got)
	}
	for n, slots := range map[string][]int{"lab-1": {1, 4}, "lab-2": {2, 5}} {
		var want []string
		for _, slot := range slots {
			want = append(want, restore.ContainerName("scalefail1", store.Container{Service: "bank_holder", Slot: slot}))
		}
		got := e.execs[n].Restored()
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restored on %s after the rollback: %v, want the moved %v back, with their state", n, got, want)
		}
	}
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		if a, _ := sw.NodeAvailability(ctx, n); a != stack.AvailabilityActive {
			t.Errorf("%s is %q after the rollback, want active", n, a)
		}
	}
}

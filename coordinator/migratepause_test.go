package coordinator_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// dyingSwarm is a FakeSwarm whose coordinator "dies" (dead closed, then blocked
// until hold is closed) once it paused the node dieAt: a kill -9 while a partial
// migration's stop has nodes paused.
type dyingSwarm struct {
	*stack.FakeSwarm
	dieAt string
	dead  chan struct{}
	hold  chan struct{}
	once  sync.Once
}

func (d *dyingSwarm) UpdateNodeAvailability(ctx context.Context, n, availability string) error {
	if err := d.FakeSwarm.UpdateNodeAvailability(ctx, n, availability); err != nil {
		return err
	}
	if n == d.dieAt && availability == stack.AvailabilityPause {
		d.once.Do(func() { close(d.dead) })
		<-d.hold
	}
	return nil
}

// TestRecoverSetsPausedNodesActive: a partial migration --to lab-3 pauses lab-1 and
// lab-2 for a moment while their tasks end (swarm's replacements go to lab-3), and
// journals each pause first; its coordinator dies then. The next coordinator sets
// them active again (a container cannot join a swarm network on a paused node: on the
// lab every put-back attempt waited out the manager's 20 s, fault seed 98), and, as
// it died before it ended the moved holders, releases them: they run on where they
// were, as swarm tasks, with their state.
func TestRecoverSetsPausedNodesActive(t *testing.T) {
	ds := &dyingSwarm{dieAt: "lab-2", dead: make(chan struct{}), hold: make(chan struct{})}
	e, sw, stopDead := newMigrateEnvConfig(t, nil, func(c *coordinator.Config) {
		ds.FakeSwarm = c.Stopper.(*stack.FakeSwarm)
		c.Stopper = ds
		// The holders as swarm tasks (the fake swarm's, round robin as bankNodes): a
		// partial migration moves them out of swarm's hands (moveTasksOut).
		st := bankStack()
		for i := range st.Containers {
			st.Containers[i].TaskID = fmt.Sprintf("task%d", i+1)
		}
		c.Resolver = stack.Static{"bank": st}
	})
	ctx := context.Background()
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	t.Cleanup(func() { opCancel(); close(ds.hold); <-opDone })
	go func() {
		defer close(opDone)
		_, _ = e.svc.Migrate(opCtx, api.MigrateRequest{ID: "pause1", Stack: "bank", To: "lab-3", Algorithm: "blocking"})
	}()
	select {
	case <-ds.dead:
	case <-opDone:
		t.Fatal("the partial migration ended without pausing lab-2")
	case <-time.After(15 * time.Second):
		t.Fatal("the partial migration did not pause lab-2 within 15 s")
	}
	for _, n := range []string{"lab-1", "lab-2"} {
		if a, _ := sw.NodeAvailability(ctx, n); a != stack.AvailabilityPause {
			t.Fatalf("%s is %q when the coordinator dies, want pause", n, a)
		}
	}
	ops, err := e.store.ListOperations(ctx)
	if err != nil || len(ops) != 1 || fmt.Sprint(ops[0].Paused) != "[lab-1 lab-2]" {
		t.Fatalf("journal when the coordinator dies: %+v (%v), want one operation with lab-1 and lab-2 paused", ops, err)
	}
	stopDead()
	stopNew := e.startMigrateCoordinator(sw, e.store)
	t.Cleanup(stopNew)
	waitForLong(t, 20*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		if a, _ := sw.NodeAvailability(ctx, n); a != stack.AvailabilityActive {
			t.Errorf("%s is %q after the recovery, want active", n, a)
		}
	}
	// It died before it ended the moved holders (it journals that first: Ending):
	// they are released, and run on where they were as swarm tasks, with their state;
	// ended and put back as standalone containers, each would run beside the
	// replacement swarm starts for it.
	for _, n := range []string{"lab-1", "lab-2"} {
		if got := e.execs[n].Restored(); len(got) != 0 {
			t.Errorf("restored on %s after the recovery: %v, want nothing (the moved holders were never ended)", n, got)
		}
		if got := e.execs[n].Stopped(); len(got) != 0 {
			t.Errorf("ended on %s after the recovery: %v, want nothing (released, they run on)", n, got)
		}
		if got := e.execs[n].Held(); len(got) != 0 {
			t.Errorf("still held on %s after the recovery: %v, want the moved holders released", n, got)
		}
	}
}

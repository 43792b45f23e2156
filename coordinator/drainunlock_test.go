package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// The replacement of a held task, restored network-locked, is unlocked once swarm
// reports it running, also when its agent fails the first unlocks (slow under load):
// the unlock is asked again, not left to the watchdog at the lock's deadline
// (drainMapWait after the placement, the replacement unreachable until then).
func TestUnlockReplacementRetries(t *testing.T) {
	net, execs, quiet := drainAgents(t)
	n2 := execs["n2"]
	ctx := context.Background()
	if err := n2.Lock(ctx, "r1", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	n2.FailUnlocks = 2
	t0 := time.Unix(1000, 0)
	tasks := []stack.Task{
		{Service: "st_web", Slot: 1, TaskID: "old", Node: "n1", DesiredState: "shutdown", State: "shutdown", ContainerID: "c1", CreatedAt: t0},
		{Service: "st_web", Slot: 1, TaskID: "new", Node: "n2", DesiredState: "running", State: "running", ContainerID: "r1", CreatedAt: t0.Add(time.Minute)},
	}
	d := &drainController{s: &Service{cfg: Config{Bus: net.Connect(), Store: store.NewMemory()}, ev: &events.Recorder{}}, sw: staticSwarm{tasks: tasks, avail: "drain"},
		addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
	ev := node.DrainEvent{Node: "n1", ContainerID: "c1", Name: "c1", Stack: "st", Service: "st_web", Slot: 1}
	start := time.Now()
	d.unlockReplacement(ctx, ev, "n2", quiet)
	if n2.IsLocked("r1") {
		t.Fatalf("the replacement r1 is still locked after unlockReplacement returned (%s): a failed unlock was not asked again", time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took > drainMapWait/2 {
		t.Errorf("unlockReplacement took %s", took)
	}
}

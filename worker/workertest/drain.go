package workertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// heldStop returns the held stop of ctr (by name or ID) from HeldStops.
func heldStop(t *testing.T, n Node, ctr string) (worker.HeldStop, bool) {
	t.Helper()
	hs, err := n.Roles.Drainer.HeldStops(context.Background())
	if err != nil {
		t.Fatalf("HeldStops: %v", err)
	}
	for _, h := range hs {
		if h.Name == ctr || h.ContainerID == ctr {
			return h, true
		}
	}
	return worker.HeldStop{}, false
}

// An armed container's stop is held (never a KILL, never an unarmed one) and listed
// until a verdict: ReleaseHeld (after CheckpointHeld: verdict checkpointed), a failed
// checkpoint, or Disarm.
func testDrainer(t *testing.T, f Factory) {
	a, b := f(t)
	if a.Roles.Drainer == nil || a.HoldStop == nil || a.Verdict == nil {
		t.Skip("SKIP: this implementation has no Drainer (or the factory no HoldStop/Verdict)")
	}
	d, ctx := a.Roles.Drainer, context.Background()
	ctr := a.Container(t)
	if a.HoldStop(t, ctr, "15") {
		t.Fatal("the stop of an unarmed container was held")
	}
	if err := d.Arm(ctx, ctr, worker.ArmOptions{}); err == nil {
		t.Fatal("Arm without a budget succeeded")
	}
	arm := worker.ArmOptions{Budget: 30 * time.Second, Policy: "migrate", Service: "st_web", Slot: 2}
	if err := d.Arm(ctx, ctr, arm); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	if a.HoldStop(t, ctr, "9") {
		t.Fatal("a KILL was held")
	}
	if !a.HoldStop(t, ctr, "15") {
		t.Fatal("the stop of an armed container was not held")
	}
	h, ok := heldStop(t, a, ctr)
	if !ok || h.Signal != "15" || h.Armed.Policy != "migrate" || h.Armed.Service != "st_web" || h.Armed.Slot != 2 {
		t.Fatalf("held stop %+v (found %v), want signal 15 with the arming", h, ok)
	}
	if err := d.ReleaseHeld(ctx, h.ContainerID, "not a drain"); err != nil {
		t.Fatalf("ReleaseHeld: %v", err)
	}
	if v, ok := a.Verdict(t, ctr); !ok || v.Outcome != ociwrap.VerdictRelease {
		t.Fatalf("verdict after ReleaseHeld: %+v %v", v, ok)
	}
	if _, ok := heldStop(t, a, ctr); ok {
		t.Fatal("a released stop is still listed")
	}
	if err := d.ReleaseHeld(ctx, h.ContainerID, "again"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("ReleaseHeld of no held stop: %v, want node.ErrNotFound", err)
	}

	// A drain: the held container is checkpointed with exit.
	if !a.HoldStop(t, ctr, "15") {
		t.Fatal("second stop not held")
	}
	set := id("wt.drain")
	m, err := d.CheckpointHeld(ctx, h.ContainerID, set, "")
	if err != nil || m == nil || len(m.Files) == 0 {
		t.Fatalf("CheckpointHeld: %+v %v, want a manifest with files", m, err)
	}
	// Still held (the set is placed for the replacement first), and says so.
	if v, ok := a.Verdict(t, ctr); ok {
		t.Fatalf("verdict %+v before ReleaseHeld: the stop must stay held", v)
	}
	if h, ok := heldStop(t, a, ctr); !ok || h.Set != set {
		t.Fatalf("held stop after CheckpointHeld: %+v %v, want held with set %s", h, ok, set)
	}
	if _, err := d.CheckpointHeld(ctx, h.ContainerID, id("wt.drain"), ""); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("second CheckpointHeld: %v, want node.ErrConflict", err)
	}
	if err := d.ReleaseHeld(ctx, h.ContainerID, ""); err != nil {
		t.Fatalf("ReleaseHeld after the checkpoint: %v", err)
	}
	if v, ok := a.Verdict(t, ctr); !ok || v.Outcome != ociwrap.VerdictCheckpointed {
		t.Fatalf("verdict after CheckpointHeld and ReleaseHeld: %+v %v, want checkpointed", v, ok)
	}
	if _, err := d.CheckpointHeld(ctx, h.ContainerID, id("wt.drain"), ""); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("CheckpointHeld without a held stop: %v, want node.ErrNotFound", err)
	}
	if err := a.Roles.Sets.DropSet(ctx, set); err != nil {
		t.Fatalf("DropSet of the drained set: %v", err)
	}

	// A drain with copy direct: the held container is checkpointed straight into the
	// replacement's node; the set is there, not here, and the stop stays held.
	ctr3 := a.Container(t)
	if err := d.Arm(ctx, ctr3, arm); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	if !a.HoldStop(t, ctr3, "15") {
		t.Fatal("stop of the third armed container not held")
	}
	h3, _ := heldStop(t, a, ctr3)
	into := id("wt.drainto")
	if _, err := d.CheckpointHeld(ctx, h3.ContainerID, into, b.Addr); err != nil {
		t.Fatalf("CheckpointHeld into %s: %v", b.Addr, err)
	}
	if h, ok := heldStop(t, a, ctr3); !ok || h.Set != into || h.Into != b.Addr {
		t.Fatalf("held stop after CheckpointHeld into %s: %+v %v, want held with set %s dumped into it", b.Addr, h, ok, into)
	}
	complete(t, b, into)
	if _, err := b.Roles.Sets.Sockets(ctx, into, "x"); err != nil {
		t.Fatalf("set of CheckpointHeld into the target: %v", err)
	}
	if _, err := a.Roles.Sets.Sockets(ctx, into, "x"); !errors.Is(err, node.ErrNoSuchSet) {
		t.Fatalf("set of CheckpointHeld into another node, on the source: %v, want node.ErrNoSuchSet (none stays)", err)
	}
	if err := d.ReleaseHeld(ctx, h3.ContainerID, ""); err != nil {
		t.Fatalf("ReleaseHeld after the direct checkpoint: %v", err)
	}
	if v, ok := a.Verdict(t, ctr3); !ok || v.Outcome != ociwrap.VerdictCheckpointed {
		t.Fatalf("verdict after the direct checkpoint and ReleaseHeld: %+v %v, want checkpointed", v, ok)
	}
	if err := b.Roles.Sets.DropSet(ctx, into); err != nil {
		t.Fatalf("DropSet of the set dumped into the target: %v", err)
	}

	// Disarm releases a held stop; afterwards nothing is held.
	ctr2 := a.Container(t)
	if err := d.Arm(ctx, ctr2, arm); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	if !a.HoldStop(t, ctr2, "SIGTERM") {
		t.Fatal("stop of the second armed container not held")
	}
	if err := d.Disarm(ctx, ctr2); err != nil {
		t.Fatalf("Disarm: %v", err)
	}
	if v, ok := a.Verdict(t, ctr2); !ok || v.Outcome != ociwrap.VerdictRelease {
		t.Fatalf("verdict after Disarm of a held stop: %+v %v", v, ok)
	}
	if a.HoldStop(t, ctr2, "15") {
		t.Fatal("a disarmed container's stop was held")
	}
	if err := d.Disarm(ctx, ctr2); err != nil {
		t.Fatalf("second Disarm: %v", err)
	}
}

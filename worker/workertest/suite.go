// Package workertest is the conformance suite of the worker's roles (worker.Holder,
// Dumper, Sets, Restorer, Tasks, Inspector, Drainer, ActivityCounter, Translations,
// PreCopier, ContainerStater): Run drives one
// implementation through what the node agent relies on, and is run against the worker
// in-process, its HTTP Client and the in-memory worker.Fake (worker/roles_test.go).
package workertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// Node is one worker under test.
type Node struct {
	// Name is the worker's node name (Info's Node).
	Name string
	// Roles are the implementation under test.
	Roles worker.Roles
	// Addr is the node's transfer address: where other nodes send it sets.
	Addr string
	// Container returns a new running container of the node (its name), with one TCP
	// connection (ActivityCounter lists it).
	Container func(t *testing.T) string
	// Complete, when set, makes a set the suite dumped on the node readable by Sockets
	// and PlaceTask (a fake dumper's images are no CRIU images).
	Complete func(t *testing.T, set string)
	// HoldStop does what the runtime wrapper does at a `kill` of container ctr with
	// signal sig (ociwrap.BeginHold) and says whether the stop is now held; Verdict
	// reads the worker's verdict for ctr's last held stop. Nil: Drainer is skipped.
	HoldStop func(t *testing.T, ctr, sig string) bool
	Verdict  func(t *testing.T, ctr string) (ociwrap.Verdict, bool)
	// XlateInUse says whether a TCP socket of container ctr uses old (what the
	// worker's poll reads). Nil: Translations is skipped.
	XlateInUse func(t *testing.T, ctr string, old netip.Addr, used bool)
	// AnyContainer: every container name exists (the Fake's).
	AnyContainer bool
}

// Factory returns two fresh nodes of one implementation: a sends sets to b.
type Factory func(t *testing.T) (a, b Node)

var seq atomic.Int64

func id(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

func complete(t *testing.T, n Node, set string) {
	t.Helper()
	if n.Complete != nil {
		n.Complete(t, set)
	}
}

// dumped dumps a new container of n into a new set (left running) and returns both.
func dumped(t *testing.T, n Node) (ctr, set string, m *imageset.Manifest) {
	t.Helper()
	ctr, set = n.Container(t), id("wt.c")
	m, err := n.Roles.Dumper.Dump(context.Background(), ctr, set, true)
	if err != nil {
		t.Fatalf("Dump(%s, %s): %v", ctr, set, err)
	}
	if m == nil || len(m.Files) == 0 {
		t.Fatalf("Dump(%s, %s): manifest %+v, want its files", ctr, set, m)
	}
	complete(t, n, set)
	return ctr, set, m
}

func held(t *testing.T, n Node, ctr string) (locked, frozen bool) {
	t.Helper()
	hs, err := n.Roles.Holder.Holds(context.Background())
	if err != nil {
		t.Fatalf("Holds: %v", err)
	}
	for _, h := range hs {
		if h.ContainerID == ctr || strings.TrimPrefix(h.Name, "/") == ctr {
			locked, frozen = locked || h.Locked, frozen || h.Frozen
		}
	}
	return locked, frozen
}

// Run runs the suite.
func Run(t *testing.T, f Factory) {
	t.Run("Holder", func(t *testing.T) { testHolder(t, f) })
	t.Run("Dumper", func(t *testing.T) { testDumper(t, f) })
	t.Run("Sets", func(t *testing.T) { testSets(t, f) })
	t.Run("Restorer", func(t *testing.T) { testRestorer(t, f) })
	t.Run("Tasks", func(t *testing.T) { testTasks(t, f) })
	t.Run("Inspector", func(t *testing.T) { testInspector(t, f) })
	t.Run("Drainer", func(t *testing.T) { testDrainer(t, f) }) // drain.go
	t.Run("Activity", func(t *testing.T) { testActivity(t, f) })
	t.Run("Translations", func(t *testing.T) { testTranslations(t, f) }) // xlate.go
	t.Run("PreCopier", func(t *testing.T) { testPreCopier(t, f) })       // precopy.go
}

// A container's activity counters, per connection too, read the same twice when it did
// nothing in between (the suite's containers run nothing), and locking it changes none
// of them.
func testActivity(t *testing.T, f Factory) {
	a, _ := f(t)
	ac, ok := a.Roles.Holder.(worker.ActivityCounter)
	if !ok {
		t.Fatalf("%T is no worker.ActivityCounter", a.Roles.Holder)
	}
	ctx := context.Background()
	ctr := a.Container(t)
	c1, err := ac.Activity(ctx, ctr)
	if err != nil {
		t.Fatalf("Activity(%s): %v", ctr, err)
	}
	if c1.CPUNanos == 0 {
		t.Fatalf("Activity(%s) = %+v: a running container used some CPU time", ctr, c1)
	}
	// Per connection: the suite's containers have one TCP connection.
	if len(c1.Conns) == 0 {
		t.Fatalf("Activity(%s) = %+v: no connection counters (the container has a TCP connection)", ctr, c1)
	}
	for _, k := range c1.Conns {
		if _, err := netip.ParseAddrPort(k.Local); err != nil {
			t.Fatalf("Activity(%s): connection %+v: local address: %v", ctr, k, err)
		}
		if _, err := netip.ParseAddrPort(k.Remote); err != nil {
			t.Fatalf("Activity(%s): connection %+v: remote address: %v", ctr, k, err)
		}
	}
	if err := a.Roles.Holder.Lock(ctx, ctr, nil, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	c2, err := ac.Activity(ctx, ctr)
	if err != nil || !c2.Equal(c1) {
		t.Fatalf("Activity(%s) after a lock = %+v, %v; want %+v again", ctr, c2, err, c1)
	}
	if err := a.Roles.Holder.Unlock(ctx, ctr, nil); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

// Lock and freeze hold a container until released, and Holds lists them; Stop ends a
// frozen container only. ContainerState reads each state without touching it.
func testHolder(t *testing.T, f Factory) {
	a, _ := f(t)
	h, ctx := a.Roles.Holder, context.Background()
	ctr := a.Container(t)
	cs, ok := h.(worker.ContainerStater)
	if !ok {
		t.Fatalf("%T is no worker.ContainerStater", h)
	}
	state := func(want ...worker.ContainerState) {
		t.Helper()
		st, err := cs.ContainerState(ctx, ctr)
		if err != nil || !slices.Contains(want, st) {
			t.Fatalf("ContainerState: %q, %v; want one of %q", st, err, want)
		}
	}
	state(worker.ContainerRunning)
	if !a.AnyContainer {
		if st, err := cs.ContainerState(ctx, "no-such-container"); err != nil || st != worker.ContainerGone {
			t.Fatalf("ContainerState of an unknown container: %q, %v; want %q", st, err, worker.ContainerGone)
		}
	}
	deadline := time.Now().Add(time.Minute)
	if err := h.Lock(ctx, ctr, nil, deadline); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if l, _ := held(t, a, ctr); !l {
		t.Fatal("Holds does not list a locked container as locked")
	}
	if err := h.Freeze(ctx, ctr, deadline); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if l, fr := held(t, a, ctr); !l || !fr {
		t.Fatalf("Holds: locked %v frozen %v, want both", l, fr)
	}
	state(worker.ContainerFrozen)
	if err := h.Thaw(ctx, ctr); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	state(worker.ContainerRunning)
	if err := h.Unlock(ctx, ctr, nil); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if l, fr := held(t, a, ctr); l || fr {
		t.Fatalf("released container still held: locked %v frozen %v", l, fr)
	}
	if err := h.Stop(ctx, ctr); !errors.Is(err, node.ErrNotFrozen) || !errors.Is(err, node.ErrFailedPrecondition) {
		t.Fatalf("Stop of a running container: %v, want node.ErrNotFrozen", err)
	}
	if a.Roles.Lazy == nil {
		t.Fatal("the worker has no post-copy source role (Roles.Lazy)")
	}
	if err := a.Roles.Lazy.DisconnectHeld(ctx, ctr); !errors.Is(err, node.ErrNotFrozen) {
		t.Fatalf("DisconnectHeld of a running container: %v, want node.ErrNotFrozen (it keeps its networks)", err)
	}
	// Putting a container back on its networks takes nothing from it: not refused.
	back := []node.NetworkAttach{{Network: "wt-net", IPv4: "10.99.0.7", Aliases: []string{"echo"}}}
	if err := a.Roles.Lazy.ReconnectHeld(ctx, ctr, back); err != nil {
		t.Fatalf("ReconnectHeld: %v", err)
	}
	if !a.AnyContainer {
		if err := a.Roles.Lazy.ReconnectHeld(ctx, "no-such-container", back); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("ReconnectHeld of an unknown container: %v, want node.ErrNotFound", err)
		}
	}
	if err := h.Freeze(ctx, ctr, deadline); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if err := h.Stop(ctx, ctr); err != nil {
		t.Fatalf("Stop of a frozen container: %v", err)
	}
	if l, fr := held(t, a, ctr); l || fr {
		t.Fatalf("stopped container still held: locked %v frozen %v", l, fr)
	}
}

// A dump writes a verifiable set here; DumpTo also streams it to another node;
// DumpInto leaves it there only; a post-copy dump is refused where it cannot run.
func testDumper(t *testing.T, f Factory) {
	a, b := f(t)
	d, ctx := a.Roles.Dumper, context.Background()
	ctr := a.Container(t)
	if err := d.CheckDump(ctx, ctr); err != nil {
		t.Fatalf("CheckDump of a dumpable container: %v", err)
	}
	// The disk-space preflight: room for a container's dump here; no dump, no question.
	if sc, ok := d.(worker.SpaceChecker); ok {
		if err := sc.CheckSpace(ctx, []worker.SpaceDump{{Container: ctr, Label: "web.1"}}); err != nil {
			t.Fatalf("CheckSpace of a container's dump with room on the disk: %v", err)
		}
		if err := sc.CheckSpace(ctx, nil); err != nil {
			t.Fatalf("CheckSpace of no dump: %v", err)
		}
	}
	_, set, m := dumped(t, a)
	res, err := a.Roles.Sets.Sockets(ctx, set, "web.1")
	if err != nil {
		t.Fatalf("Sockets of a dumped set: %v", err)
	}
	for _, want := range m.Files {
		if !slices.Contains(res.Manifest.Files, want) {
			t.Fatalf("verified manifest %+v lacks the dump's file %+v", res.Manifest.Files, want)
		}
	}
	// A set dumped here, rechecked by its stamps: the same manifest and sockets.
	if rc, ok := a.Roles.Sets.(worker.SetRechecker); ok {
		rres, err := rc.RecheckSockets(ctx, set, "web.1")
		if err != nil {
			t.Fatalf("RecheckSockets of a set dumped here: %v", err)
		}
		if !slices.Equal(rres.Manifest.Files, res.Manifest.Files) || len(rres.Sockets) != len(res.Sockets) {
			t.Fatalf("RecheckSockets: files %+v sockets %d, want what Sockets said: %+v, %d", rres.Manifest.Files, len(rres.Sockets), res.Manifest.Files, len(res.Sockets))
		}
	}

	set2 := id("wt.to")
	if _, err := d.DumpTo(ctx, a.Container(t), set2, b.Addr, true); err != nil {
		t.Fatalf("DumpTo: %v", err)
	}
	complete(t, a, set2)
	complete(t, b, set2)
	for _, n := range []Node{a, b} {
		if _, err := n.Roles.Sets.Sockets(ctx, set2, "x"); err != nil {
			t.Fatalf("set of DumpTo on %s: %v", n.Name, err)
		}
	}

	set3 := id("wt.into")
	if _, err := d.DumpInto(ctx, a.Container(t), set3, b.Addr); err != nil {
		t.Fatalf("DumpInto: %v", err)
	}
	complete(t, b, set3)
	if _, err := b.Roles.Sets.Sockets(ctx, set3, "x"); err != nil {
		t.Fatalf("set of DumpInto on the target: %v", err)
	}
	if _, err := a.Roles.Sets.Sockets(ctx, set3, "x"); !errors.Is(err, node.ErrNoSuchSet) {
		t.Fatalf("set of DumpInto on the source: %v, want node.ErrNoSuchSet (none stays)", err)
	}

	info, err := a.Roles.Inspector.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.PostCopy.OK {
		if _, err := d.DumpLazy(ctx, a.Container(t), id("wt.lazy"), "127.0.0.1:0"); err == nil {
			t.Fatalf("DumpLazy succeeded where post-copy cannot run (%s)", info.PostCopy.Reason)
		}
		if _, err := d.DumpWith(ctx, a.Container(t), id("wt.lazyheld"), worker.DumpOptions{LeaveRunning: true, Lazy: "127.0.0.1:0"}); err == nil {
			t.Fatalf("held DumpWith Lazy succeeded where post-copy cannot run (%s)", info.PostCopy.Reason)
		}
	}
	// No post-copy dump of set3 here: nothing to wait for.
	if lw, ok := d.(worker.LazyWaiter); ok {
		if err := lw.WaitLazy(ctx, set3); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("WaitLazy of a set with no post-copy dump: %v, want node.ErrNotFound (worker.ErrNoLazy)", err)
		}
		if err := lw.CancelLazy(ctx, set3); err != nil {
			t.Fatalf("CancelLazy of a set with no post-copy dump: %v, want nil (nothing to stop)", err)
		}
	} else {
		t.Errorf("the dumper %T does not wait for post-copy page servers (worker.LazyWaiter)", d)
	}
}

// Sets move once (a second send finds them there), are verified where they are, and
// go idempotently; missing sets and bad IDs are refused with their codes.
func testSets(t *testing.T, f Factory) {
	a, b := f(t)
	s, ctx := a.Roles.Sets, context.Background()
	_, set, _ := dumped(t, a)
	if res, err := s.Send(ctx, set, b.Addr); err != nil || res.AlreadyThere {
		t.Fatalf("Send: %+v %v, want sent", res, err)
	}
	complete(t, b, set)
	if _, err := b.Roles.Sets.Sockets(ctx, set, "x"); err != nil {
		t.Fatalf("sent set on the target: %v", err)
	}
	if res, err := s.Send(ctx, set, b.Addr); err != nil || !res.AlreadyThere {
		t.Fatalf("second Send: %+v %v, want AlreadyThere", res, err)
	}
	// DigestWaiter: a set received whole (every file verified on arrival) has every
	// digest at once; a set not there is node.ErrNoSuchSet.
	if dw, ok := b.Roles.Sets.(worker.DigestWaiter); ok {
		m, err := dw.SetDigests(ctx, set)
		if err != nil || m == nil || len(m.Files) == 0 || m.PagesUnhashed {
			t.Fatalf("SetDigests of a sent set: %+v %v, want its manifest with every digest", m, err)
		}
		for _, f := range m.Files {
			if len(f.SHA256) != 64 {
				t.Fatalf("SetDigests of a sent set: file %s has digest %q", f.Name, f.SHA256)
			}
		}
		if _, err := dw.SetDigests(ctx, "wt.nosuch"); !errors.Is(err, node.ErrNoSuchSet) {
			t.Fatalf("SetDigests of a missing set: %v, want node.ErrNoSuchSet", err)
		}
	} else {
		t.Errorf("%T does not implement worker.DigestWaiter", b.Roles.Sets)
	}
	if _, err := s.Send(ctx, "wt.nosuch", b.Addr); !errors.Is(err, node.ErrNoSuchSet) || !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("Send of a missing set: %v, want node.ErrNoSuchSet", err)
	}
	if err := s.DropSet(ctx, set); err != nil {
		t.Fatalf("DropSet: %v", err)
	}
	if _, err := s.Sockets(ctx, set, "x"); !errors.Is(err, node.ErrNoSuchSet) {
		t.Fatalf("Sockets of a dropped set: %v, want node.ErrNoSuchSet", err)
	}
	if rc, ok := s.(worker.SetRechecker); ok {
		if _, err := rc.RecheckSockets(ctx, set, "x"); !errors.Is(err, node.ErrNoSuchSet) {
			t.Fatalf("RecheckSockets of a dropped set: %v, want node.ErrNoSuchSet", err)
		}
	}
	if err := s.DropSet(ctx, set); err != nil {
		t.Fatalf("second DropSet: %v, want nil (idempotent)", err)
	}
	if err := s.DropSet(ctx, "bad/id"); !errors.Is(err, node.ErrBadSetID) || !errors.Is(err, node.ErrInvalidArgument) {
		t.Fatalf("DropSet(bad/id): %v, want node.ErrBadSetID", err)
	}
}

// A set restores as a container that can be removed (twice); a missing set is refused
// with its code; the pre-flight check names missing sets and passes present ones.
func testRestorer(t *testing.T, f Factory) {
	a, _ := f(t)
	r, ctx := a.Roles.Restorer, context.Background()
	_, set, _ := dumped(t, a)
	rep, err := r.Preflight(ctx, worker.PreflightRequest{Sets: []worker.PreflightSet{{Set: set}, {Set: "wt.nosuch"}}})
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	if !slices.Contains(rep.Missing, "wt.nosuch") || slices.Contains(rep.Missing, set) {
		t.Fatalf("Preflight missing %v, want wt.nosuch only", rep.Missing)
	}
	name := id("wt-r")
	ref, err := r.Restore(ctx, set, worker.RestoreOptions{Name: name, Keep: true})
	if err != nil || ref.ID == "" {
		t.Fatalf("Restore: %+v %v", ref, err)
	}
	if err := r.RemoveContainer(ctx, ref.ID); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if err := r.RemoveContainer(ctx, ref.ID); err != nil {
		t.Fatalf("second RemoveContainer: %v, want nil (idempotent)", err)
	}
	if _, err := r.Restore(ctx, "wt.nosuch", worker.RestoreOptions{Name: id("wt-r")}); !errors.Is(err, node.ErrNoSuchSet) {
		t.Fatalf("Restore of a missing set: %v, want node.ErrNoSuchSet", err)
	}
}

// A set placed for a task slot takes an address map and is taken back once.
func testTasks(t *testing.T, f Factory) {
	a, _ := f(t)
	tk, ctx := a.Roles.Tasks, context.Background()
	_, set, _ := dumped(t, a)
	svc := id("wtsvc")
	if _, err := tk.PlaceTask(ctx, set, worker.TaskOptions{Service: svc, Slot: 1, AddressMapUntil: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("PlaceTask: %v", err)
	}
	if err := tk.SetAddressMap(ctx, svc, 1, map[string]string{"10.0.9.5": "10.0.9.17"}); err != nil {
		t.Fatalf("SetAddressMap: %v", err)
	}
	if rel, err := tk.UnplaceTask(ctx, svc, 1, set); err != nil || !rel.Removed || rel.Claimed != "" {
		t.Fatalf("UnplaceTask: %+v %v, want removed, unclaimed", rel, err)
	}
	if rel, err := tk.UnplaceTask(ctx, svc, 1, set); err != nil || rel.Removed {
		t.Fatalf("second UnplaceTask: %+v %v, want nothing removed", rel, err)
	}
	if _, err := tk.PlaceTask(ctx, "wt.nosuch", worker.TaskOptions{Service: svc, Slot: 2}); !errors.Is(err, node.ErrNoSuchSet) {
		t.Fatalf("PlaceTask of a missing set: %v, want node.ErrNoSuchSet", err)
	}
}

// Info names the node; a stack without restored containers lists none.
func testInspector(t *testing.T, f Factory) {
	a, _ := f(t)
	ctx := context.Background()
	info, err := a.Roles.Inspector.Info(ctx)
	if err != nil || info.Node != a.Name {
		t.Fatalf("Info: %+v %v, want node %s", info, err, a.Name)
	}
	list, err := a.Roles.Inspector.Standalone(ctx, "wtnostack")
	if err != nil || len(list) != 0 {
		t.Fatalf("Standalone of a stack without restores: %v %v", list, err)
	}
}

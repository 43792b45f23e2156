package worker_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// drainFailDumper fails every dump (as CRIU does when it cannot dump; the processes
// resume).
type drainFailDumper struct{ dump.Fake }

func (drainFailDumper) Dump(context.Context, container.Ref, container.Spec, string, dump.Options) (*imageset.Manifest, error) {
	return nil, errors.New("criu: dump failed (test)")
}

// A held container that cannot be checkpointed is left running and unlocked, and its
// stop proceeds with a verdict that says why: wrong pid (not the armed container), a
// deadline too near, a failing dump.
func TestCheckpointHeldFailuresReleaseTheStop(t *testing.T) {
	for _, c := range []struct {
		name     string
		pid      int // what runc state reports
		budget   time.Duration
		failDump bool
		want     string // in the verdict's reason
		wantErr  error
	}{
		{"pid changed", 999, 30 * time.Second, false, "armed with pid", nil},
		{"deadline too near", 0, 500 * time.Millisecond, false, "too close to its deadline", worker.ErrHoldTooShort},
		{"dump fails", 0, 30 * time.Second, true, "dump failed", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var n *fakeNode
			var dataRoot string
			var dumper dump.Dumper = dump.Fake{}
			if c.failDump {
				dumper = drainFailDumper{}
			}
			n = newFakeNodeParts(t, "n1", dumper, func(cfg *worker.Config) { dataRoot = cfg.DataRoot }, func(p *worker.Parts) {
				p.RuncState = func(ctx context.Context, _, id string) (worker.RuncState, error) {
					ref, err := n.insp.Resolve(ctx, id)
					if c.pid != 0 {
						ref.Pid = c.pid
					}
					return worker.RuncState{Pid: ref.Pid, Status: "running"}, err
				}
			})
			ctx := context.Background()
			ref := n.add("web", 42)
			if err := n.w.Arm(ctx, "web", worker.ArmOptions{Budget: c.budget, Policy: "migrate"}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(dataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
			if _, held, err := ociwrap.BeginHold(dir, ref.ID, "15", "", "", time.Now()); err != nil || !held {
				t.Fatalf("BeginHold: %v %v", held, err)
			}
			_, err := n.w.CheckpointHeld(ctx, ref.ID, "drain.web", "")
			if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
				t.Fatalf("CheckpointHeld: %v, want a failure (%v)", err, c.wantErr)
			}
			v, verr := ociwrap.ReadVerdict(dir, ref.ID)
			if verr != nil || v == nil || v.Outcome != ociwrap.VerdictRelease || !strings.Contains(v.Reason, c.want) {
				t.Fatalf("verdict %+v (%v), want release saying %q", v, verr, c.want)
			}
			if st, _ := n.lock.State(ctx, ref); st.Locked() {
				t.Fatal("the container was left network-locked")
			}
			if _, err := os.Stat(filepath.Join(n.w.SetsDir(), "drain.web")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed checkpoint left its set: %v", err)
			}
			if hs, _ := n.w.Holds(ctx); len(hs) != 0 {
				t.Fatalf("holds left: %+v", hs)
			}
		})
	}
}

// A successful checkpoint of a held container locks its network before the dump and
// leaves no hold (its processes are gone).
func TestCheckpointHeldLocksThenDumps(t *testing.T) {
	var n *fakeNode
	var dataRoot string
	n = newFakeNodeParts(t, "n1", dump.Fake{}, func(cfg *worker.Config) { dataRoot = cfg.DataRoot }, func(p *worker.Parts) {
		p.RuncState = func(ctx context.Context, _, id string) (worker.RuncState, error) {
			ref, err := n.insp.Resolve(ctx, id)
			if st, _ := n.lock.State(ctx, ref); st.Locked() {
				t.Error("locked before runc state was read")
			}
			return worker.RuncState{Pid: ref.Pid, Status: "running"}, err
		}
	})
	ctx := context.Background()
	ref := n.add("web", 42)
	if err := n.w.Arm(ctx, "web", worker.ArmOptions{Budget: 30 * time.Second, Policy: "migrate"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(dataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
	if _, held, err := ociwrap.BeginHold(dir, ref.ID, "15", "", "", time.Now()); err != nil || !held {
		t.Fatalf("BeginHold: %v %v", held, err)
	}
	// What Docker would say now is not asked: the spec recorded at Arm is dumped.
	n.insp.Add(ref, container.Spec{Name: "web", Image: "changed"})
	m, err := n.w.CheckpointHeld(ctx, ref.ID, "drain.web", "")
	if err != nil || m == nil {
		t.Fatalf("CheckpointHeld: %v", err)
	}
	if m.Spec.Image != "img" {
		t.Fatalf("manifest spec %+v, want the one recorded at Arm", m.Spec)
	}
	if v, _ := ociwrap.ReadVerdict(dir, ref.ID); v != nil {
		t.Fatalf("verdict %+v before ReleaseHeld", v)
	}
	if err := n.w.ReleaseHeld(ctx, ref.ID, ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := ociwrap.ReadVerdict(dir, ref.ID); v == nil || v.Outcome != ociwrap.VerdictCheckpointed || v.Reason != "set drain.web" {
		t.Fatalf("verdict %+v, want checkpointed naming the set", v)
	}
	if hs, _ := n.w.Holds(ctx); len(hs) != 0 {
		t.Fatalf("holds left after the container's exit: %+v", hs)
	}
}

// Arming prunes the arming of containers that no longer run.
func TestArmPrunesGoneContainers(t *testing.T) {
	var dataRoot string
	n := newFakeNodeParts(t, "n1", dump.Fake{}, func(cfg *worker.Config) { dataRoot = cfg.DataRoot }, nil)
	ctx := context.Background()
	web, old := n.add("web", 42), n.add("old", 43)
	arm := worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate"}
	for _, c := range []string{"old", "web"} {
		if err := n.w.Arm(ctx, c, arm); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(dataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
	armed := func(id string) bool { _, ok, _ := ociwrap.ReadArm(dir, id); return ok }
	if !armed(web.ID) || !armed(old.ID) {
		t.Fatal("not armed")
	}
	old.Pid = 0 // it exited
	n.insp.Add(old, container.Spec{Name: "old", Image: "img"})
	if err := n.w.Arm(ctx, "web", arm); err != nil {
		t.Fatal(err)
	}
	if !armed(web.ID) || armed(old.ID) {
		t.Fatalf("after arming web again: web armed %v (want true), old armed %v (want false)", armed(web.ID), armed(old.ID))
	}
	if recs, _ := filepath.Glob(filepath.Join(dir, "rec-*")); len(recs) != 1 {
		t.Fatalf("records left: %v", recs)
	}
}

// heldNode is a fake node whose runc reports its containers running with the pids
// they were armed with.
func heldNode(t *testing.T, name string, dumper dump.Dumper) (*fakeNode, string) {
	t.Helper()
	var n *fakeNode
	var dataRoot string
	n = newFakeNodeParts(t, name, dumper, func(cfg *worker.Config) { dataRoot = cfg.DataRoot }, func(p *worker.Parts) {
		p.RuncState = func(ctx context.Context, _, id string) (worker.RuncState, error) {
			ref, err := n.insp.Resolve(ctx, id)
			return worker.RuncState{Pid: ref.Pid, Status: "running"}, err
		}
	})
	return n, filepath.Join(dataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
}

// A held stop checkpointed into another node (copy direct for a swarm task, issue
// 19): the set's only copy is the target's, verified there with its pages; the
// source keeps nothing, the container is ended (once the target holds the set) and
// left with no lock or freeze; the held stop reports where its set went, and its
// release says checkpointed.
func TestCheckpointHeldIntoLeavesTheOnlyCopyOnTheTarget(t *testing.T) {
	k := &killRecorder{}
	a, dir := heldNode(t, "a", k)
	b := newFakeNode(t, "b")
	ctx := context.Background()
	ref := a.add("web", 42)
	if err := a.w.Arm(ctx, "web", worker.ArmOptions{Budget: 30 * time.Second, Policy: "migrate"}); err != nil {
		t.Fatal(err)
	}
	if _, held, err := ociwrap.BeginHold(dir, ref.ID, "15", "", "", time.Now()); err != nil || !held {
		t.Fatalf("BeginHold: %v %v", held, err)
	}
	cl := &worker.Client{Addr: a.w.Addr()} // the agent's way, over the worker's API
	if _, err := cl.CheckpointHeld(ctx, ref.ID, "drain.web", b.w.Addr()); err != nil {
		t.Fatalf("CheckpointHeld into b: %v", err)
	}
	got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "drain.web"))
	if err != nil {
		t.Fatalf("the target's set: %v", err)
	}
	if got.ContainerID != ref.ID || got.LeaveRunning || got.PagesReceivedBy != "b" {
		t.Fatalf("the target's manifest: %+v", got)
	}
	if _, ok := got.Lookup("pages-1.img"); !ok {
		t.Fatalf("the target's set lacks the pages: %+v", got.Files)
	}
	if _, err := os.Stat(filepath.Join(a.w.SetsDir(), "drain.web")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the source kept a copy: %v", err)
	}
	if k.names() != "web" {
		t.Fatalf("killed %q, want web once", k.names())
	}
	released(t, a, ref)
	hs, err := a.w.HeldStops(ctx)
	if err != nil || len(hs) != 1 || hs[0].Set != "drain.web" || hs[0].Into != b.w.Addr() {
		t.Fatalf("held stops %+v (%v), want the stop with set drain.web dumped into %s", hs, err, b.w.Addr())
	}
	if err := a.w.ReleaseHeld(ctx, ref.ID, ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := ociwrap.ReadVerdict(dir, ref.ID); v == nil || v.Outcome != ociwrap.VerdictCheckpointed {
		t.Fatalf("verdict %+v, want checkpointed", v)
	}
}

// A held stop whose direct checkpoint fails (the target cannot be reached, or the
// dump fails) leaves the container running, unlocked and thawed, its stop released
// with the reason, and nothing on either node.
func TestCheckpointHeldIntoFailureKeepsNothing(t *testing.T) {
	for _, c := range []struct {
		name     string
		failDump bool
		badAddr  bool
		want     string
	}{
		{name: "TargetUnreachable", badAddr: true, want: "nothing was done to the container"},
		{name: "DumpFails", failDump: true, want: "dump failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &killRecorder{}
			var dumper dump.Dumper = k
			if c.failDump {
				dumper = drainFailDumper{}
			}
			a, dir := heldNode(t, "a", dumper)
			b := newFakeNode(t, "b")
			into := b.w.Addr()
			if c.badAddr {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				into = l.Addr().String()
				_ = l.Close() // nothing listens there
			}
			ctx := context.Background()
			ref := a.add("web", 42)
			if err := a.w.Arm(ctx, "web", worker.ArmOptions{Budget: 30 * time.Second, Policy: "migrate"}); err != nil {
				t.Fatal(err)
			}
			if _, held, err := ociwrap.BeginHold(dir, ref.ID, "15", "", "", time.Now()); err != nil || !held {
				t.Fatalf("BeginHold: %v %v", held, err)
			}
			if _, err := a.w.CheckpointHeld(ctx, ref.ID, "drain.web", into); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckpointHeld: %v, want a failure saying %q", err, c.want)
			}
			if v, _ := ociwrap.ReadVerdict(dir, ref.ID); v == nil || v.Outcome != ociwrap.VerdictRelease {
				t.Fatalf("verdict %+v, want release", v)
			}
			if k.names() != "" {
				t.Fatalf("killed %q after a failed checkpoint", k.names())
			}
			released(t, a, ref)
			emptySets(t, a)
			emptySets(t, b)
		})
	}
}

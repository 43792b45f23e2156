package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// freezeWitness is the fake dumper recording, while it dumps, whether the container is
// frozen and what the journal holds for it; fail makes the dump fail after that.
type freezeWitness struct {
	dump.Fake
	frz     *freezer.Fake
	journal string
	took    time.Duration
	fail    error

	mu     sync.Mutex
	frozen bool
	hold   watchdog.Hold
	held   bool
}

func (d *freezeWitness) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts dump.Options) (*imageset.Manifest, error) {
	time.Sleep(d.took) // a dump taking this long (the hold's renewal is what is tested)
	f, _ := d.frz.Frozen(ctx, c)
	h, ok, _ := (watchdog.Journal{Dir: d.journal}).Get(c.ID)
	d.mu.Lock()
	d.frozen, d.hold, d.held = f, h, ok
	d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	return d.Fake.Dump(ctx, c, spec, set, opts)
}

func (d *freezeWitness) seen() (frozen bool, h watchdog.Hold, held bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frozen, d.hold, d.held
}

func newWitnessNode(t *testing.T, d *freezeWitness, edit func(*worker.Config)) *fakeNode {
	t.Helper()
	n := newFakeNodeConfig(t, "n1", d, edit)
	d.frz, d.journal = n.freeze, n.journal
	return n
}

// The worker freezes a running container before CRIU does (CRIU polls its freezer
// every 100 ms), journaled like Freeze, and thaws it after a leave-running dump.
func TestDumpFreezesFirstAndThawsAfterLeaveRunning(t *testing.T) {
	d := &freezeWitness{}
	n := newWitnessNode(t, d, nil)
	web := n.add("web", 7)
	if _, err := n.w.Dump(context.Background(), "web", "s1", true); err != nil {
		t.Fatal(err)
	}
	frozen, h, held := d.seen()
	if !frozen || !held || !h.Frozen || h.Locked {
		t.Fatalf("during the dump: frozen %v, journaled %v %+v; want frozen with a journaled freeze only", frozen, held, h)
	}
	released(t, n, web)
}

// A container its caller froze (the coordinator's protocols) stays frozen, with the
// caller's hold, after a leave-running dump: thawing it is the caller's step.
func TestDumpLeavesTheCallersFreezeAlone(t *testing.T) {
	d := &freezeWitness{}
	n := newWitnessNode(t, d, nil)
	web := n.add("web", 7)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute).Truncate(time.Second)
	if err := n.w.Freeze(ctx, "web", deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := n.w.Dump(ctx, "web", "s1", true); err != nil {
		t.Fatal(err)
	}
	if f, _ := n.freeze.Frozen(ctx, web); !f {
		t.Fatal("the caller's freeze was lifted by the dump")
	}
	h, ok, err := (watchdog.Journal{Dir: n.journal}).Get(web.ID)
	if err != nil || !ok || !h.Frozen || !h.Deadline.Equal(deadline) {
		t.Fatalf("the caller's hold after the dump: %+v ok %v err %v; want frozen until %v", h, ok, err, deadline)
	}
	if err := n.w.Thaw(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	released(t, n, web)
}

// A failed dump thaws what the worker froze for it and leaves no hold behind.
func TestFailedDumpThawsItsOwnFreeze(t *testing.T) {
	d := &freezeWitness{fail: fmt.Errorf("dump: %w: unsupported resource", dump.ErrCRIU)}
	n := newWitnessNode(t, d, nil)
	web := n.add("web", 7)
	for _, leave := range []bool{true, false} {
		_, err := n.w.Dump(context.Background(), "web", fmt.Sprintf("s-%v", leave), leave)
		if !errors.Is(err, dump.ErrCRIU) {
			t.Fatalf("leaveRunning %v: %v, want ErrCRIU", leave, err)
		}
		if frozen, _, _ := d.seen(); !frozen {
			t.Fatalf("leaveRunning %v: not frozen during the dump", leave)
		}
		released(t, n, web)
	}
}

// A dump that outlasts --max-hold keeps its freeze journaled: the deadline is renewed
// while it runs, so the watchdog does not thaw the container mid-dump.
func TestDumpRenewsItsFreezeWhileItRuns(t *testing.T) {
	d := &freezeWitness{took: 900 * time.Millisecond}
	n := newWitnessNode(t, d, func(c *worker.Config) { c.MaxHold = 300 * time.Millisecond })
	web := n.add("web", 7)
	start := time.Now()
	if _, err := n.w.Dump(context.Background(), "web", "s1", true); err != nil {
		t.Fatal(err)
	}
	_, h, held := d.seen()
	if !held || !h.Deadline.After(start.Add(d.took)) {
		t.Fatalf("hold at the end of a %v dump: %+v (journaled %v); want a deadline renewed past %v", d.took, h, held, start.Add(d.took))
	}
	released(t, n, web)
}

// A container that cannot be frozen before its dump is still dumped: CRIU freezes it
// itself, and nothing of the failed pre-freeze (freeze, hold) is left.
func TestDumpWhosePreFreezeFailsLeavesTheFreezeToCRIU(t *testing.T) {
	d := &freezeWitness{}
	n := newWitnessNode(t, d, nil)
	web := n.add("web", 7)
	n.freeze.Fail("freeze", errors.New("cgroup.freeze: device or resource busy"))
	if _, err := n.w.Dump(context.Background(), "web", "s1", true); err != nil {
		t.Fatalf("dump after a failed pre-freeze: %v, want it done (CRIU freezes)", err)
	}
	if frozen, h, held := d.seen(); frozen || held {
		t.Fatalf("during the dump: frozen %v, journaled %v %+v; want neither (the pre-freeze failed)", frozen, held, h)
	}
	if _, err := os.Stat(filepath.Join(n.w.SetsDir(), "s1")); err != nil {
		t.Fatalf("the set of the dump: %v", err)
	}
	released(t, n, web)
}

// A leave-running dump whose container cannot be thawed afterwards fails, naming the
// container and the cause; its freeze stays journaled (the watchdog thaws it at its
// deadline) and the set is dropped.
func TestDumpWhoseThawFailsKeepsTheHoldAndDropsTheSet(t *testing.T) {
	d := &freezeWitness{}
	n := newWitnessNode(t, d, nil)
	web := n.add("web", 7)
	n.freeze.Fail("thaw", errors.New("cgroup.freeze: no such device"))
	_, err := n.w.Dump(context.Background(), "web", "s1", true)
	if err == nil || !strings.Contains(err.Error(), "web") || !strings.Contains(err.Error(), "no such device") {
		t.Fatalf("dump with a failing thaw: %v; want an error naming web and the cause", err)
	}
	h, ok, jerr := (watchdog.Journal{Dir: n.journal}).Get(web.ID)
	if jerr != nil || !ok || !h.Frozen || !h.Deadline.After(time.Now()) {
		t.Fatalf("hold after the failed thaw: %+v ok %v err %v; want the freeze journaled with a deadline ahead", h, ok, jerr)
	}
	emptySets(t, n)
	n.freeze.Fail("thaw", nil)
	if err := n.w.Thaw(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	released(t, n, web)
}

package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

// flakyLocks is a Holder with per-peer network locks (netlock.Apply, as nft's sets)
// whose unlocks fail while down (a worker restarting, its nft killed).
type flakyLocks struct {
	worker.Holder
	mu    sync.Mutex
	down  bool
	locks map[string]netlock.State
}

func (f *flakyLocks) Lock(_ context.Context, name string, peers []netip.Addr, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks[name] = netlock.Apply(f.locks[name], true, peers)
	return nil
}

func (f *flakyLocks) Unlock(_ context.Context, name string, peers []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("netlock " + name + ": nft -f -: signal: killed")
	}
	f.locks[name] = netlock.Apply(f.locks[name], false, peers)
	return nil
}

func (f *flakyLocks) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *flakyLocks) state(name string) netlock.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locks[name]
}

// TestAFailedReleaseRunsBeforeTheNextHold: a release that failed is repeated on the
// container's queue, and no new hold of the container is taken while it still fails;
// once it can run, it runs before the new hold, so that its late repetition never undoes
// the newer snapshot's lock (here: snapshot s1's unlock of peer x fails, s2 then locks
// peer y).
func TestAFailedReleaseRunsBeforeTheNextHold(t *testing.T) {
	h := &flakyLocks{Holder: worker.NewFake("n1"), locks: map[string]netlock.State{}}
	roles := worker.NewFake("n1").Roles()
	roles.Holder = h
	a := &Agent{cfg: Config{Node: "n1", Worker: roles, Hold: time.Minute, ReleaseRetry: 5 * time.Millisecond, ActionTimeout: time.Minute},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, y := netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.10")
	act := func(kind algorithms.ActionKind, snapshot string, peer netip.Addr) prepared {
		return prepared{act: algorithms.Action{Kind: kind, Snapshot: snapshot, Container: "c", Peers: []string{"p"}},
			t: node.Target{ID: "c", Node: "n1"}, peers: []node.Target{{ID: "p", IPs: []string{peer.String()}}}}
	}
	if e := actionErr(a.execute(ctx, act(algorithms.ActLock, "s1", x))); e != "" {
		t.Fatal(e)
	}
	h.setDown(true)
	unlock := act(algorithms.ActUnlock, "s1", x)
	if e := actionErr(a.execute(ctx, unlock)); e == "" {
		t.Fatal("the unlock succeeded while the holder was down")
	}
	q := make(chan job, 4)
	a.releaseFailed(ctx, q, unlock)
	// Repeated while it fails.
	for i := 0; i < 2; i++ {
		select {
		case j := <-q:
			j.fn(ctx)
		case <-time.After(5 * time.Second):
			t.Fatal("the failed unlock was not repeated")
		}
	}
	if s := h.state("c"); len(s.Peers) != 1 || s.Peers[0] != x {
		t.Fatalf("lock state %+v, want still x", s)
	}
	// s2's lock is refused while s1's unlock still fails.
	if e := actionErr(a.execute(ctx, act(algorithms.ActLock, "s2", y))); !strings.Contains(e, "earlier release") {
		t.Fatalf("s2's lock while s1's unlock fails: %q, want refused naming the earlier release", e)
	}
	if s := h.state("c"); len(s.Peers) != 1 || s.Peers[0] != x {
		t.Fatalf("lock state %+v after the refused lock, want still x only", s)
	}
	// Back: s2's lock runs s1's unlock first, then locks y.
	h.setDown(false)
	if e := actionErr(a.execute(ctx, act(algorithms.ActLock, "s2", y))); e != "" {
		t.Fatal(e)
	}
	// The repetition already scheduled finds nothing left to do: y stays locked.
	select {
	case j := <-q:
		j.fn(ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("the scheduled repetition never ran")
	}
	if s := h.state("c"); len(s.Peers) != 1 || s.Peers[0] != y || s.All {
		t.Fatalf("lock state %+v, want y only (x unlocked before y was locked, and y not unlocked by s1's repetition)", s)
	}
	if ids := a.rel.ids(); len(ids) != 0 {
		t.Fatalf("releases still pending for %v", ids)
	}
	select {
	case <-q:
		t.Fatal("repeated again although nothing was pending")
	case <-time.After(50 * time.Millisecond):
	}
}

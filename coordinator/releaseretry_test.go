package coordinator_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

// peerLocks is a Holder whose network locks are per peer, as the real one's (nft sets
// of peer addresses: netlock.Apply), over the fake's freezes; the first per-peer unlock
// of container fail fails as the real one did when its nft process was killed.
type peerLocks struct {
	worker.Holder
	mu     sync.Mutex
	locks  map[string]netlock.State
	fail   string
	failed chan struct{} // closed at that failure
}

func (p *peerLocks) Lock(_ context.Context, name string, peers []netip.Addr, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.locks[name] = netlock.Apply(p.locks[name], true, peers)
	return nil
}

func (p *peerLocks) Unlock(_ context.Context, name string, peers []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if name == p.fail && len(peers) > 0 {
		p.fail = ""
		close(p.failed)
		return errors.New("worker: remote error: netlock " + name + ": nft -f -: signal: killed")
	}
	p.locks[name] = netlock.Apply(p.locks[name], false, peers)
	return nil
}

// locked lists the containers still network-locked.
func (p *peerLocks) locked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for c, s := range p.locks {
		if s.Locked() {
			out = append(out, c)
		}
	}
	return out
}

// TestAFailedUnlockIsRepeatedAfterTheSnapshotEnded: one of a Chandy-Lamport snapshot's
// per-peer unlocks fails (fault seed 1500: the nft process of the unlock was killed);
// the snapshot commits, as it did there, and the container, locked to that one peer
// still, is unlocked within seconds by the agent's repetition of the failed unlock, not
// left to its hold's deadline minutes later.
func TestAFailedUnlockIsRepeatedAfterTheSnapshotEnded(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	holders := map[string]*peerLocks{}
	var mu sync.Mutex
	e.wrapHolder = func(n string, h worker.Holder) worker.Holder {
		mu.Lock()
		defer mu.Unlock()
		p := &peerLocks{Holder: h, locks: map[string]netlock.State{}, failed: make(chan struct{})}
		if n == "lab-1" {
			p.fail = "ctr4"
		}
		holders[n] = p
		return p
	}
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		before, _ := e.svc.AgentAlive(n)
		e.cancel[n]()
		e.startAgent(n)
		waitFor(t, "the agent of "+n+" back (a new start time, live)", func() bool {
			started, live := e.svc.AgentAlive(n)
			return live && !started.Equal(before)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "s-unlock", Stack: "bank", Algorithm: "chandy-lamport"}); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	m, err := e.store.Get(ctx, "s-unlock")
	if err != nil || m.State != store.StateCommitted {
		t.Fatalf("snapshot s-unlock: %v %v, want committed", m.State, err)
	}
	select {
	case <-holders["lab-1"].failed:
	default:
		t.Fatal("ctr4's per-peer unlock was never asked for: the test did not inject its fault")
	}
	start := time.Now()
	for {
		var left []string
		for _, p := range holders {
			left = append(left, p.locked()...)
		}
		if len(left) == 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("still network-locked %v after the snapshot committed: %v (a failed unlock is not repeated)", time.Since(start).Round(time.Millisecond), left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := e.held(); len(h) != 0 {
		t.Fatalf("still held: %v", h)
	}
}

// Package netlocktest is the conformance suite every netlock.Locker must pass.
package netlocktest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

// Target gives the suite a fresh container (or network namespace) to lock. The suite
// calls it once per subtest; cleanup is registered by the factory with t.Cleanup.
type Target func(t *testing.T) container.Ref

// Run runs the suite against l.
func Run(t *testing.T, l netlock.Locker, target Target) {
	ctx := context.Background()
	a := netip.MustParseAddr("10.11.0.2")
	b := netip.MustParseAddr("10.11.0.3")
	v6 := netip.MustParseAddr("fd00::5")
	lo := netip.MustParseAddr("127.0.0.1")

	want := func(t *testing.T, c container.Ref, all bool, peers ...netip.Addr) {
		t.Helper()
		s, err := l.State(ctx, c)
		if err != nil {
			t.Fatalf("State: %v", err)
		}
		if s.All != all || !slices.Equal(s.Peers, peers) {
			t.Fatalf("state = all:%v peers:%v, want all:%v peers:%v", s.All, s.Peers, all, peers)
		}
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("starts unlocked", func(t *testing.T) {
		c := target(t)
		want(t, c, false)
	})
	t.Run("lock all, idempotent, unlock", func(t *testing.T) {
		c := target(t)
		must(t, l.Lock(ctx, c, nil))
		must(t, l.Lock(ctx, c, nil))
		want(t, c, true)
		must(t, l.Unlock(ctx, c, nil))
		want(t, c, false)
		must(t, l.Unlock(ctx, c, nil)) // unlocking an unlocked container is fine
		want(t, c, false)
	})
	t.Run("peers accumulate and unlock singly", func(t *testing.T) {
		c := target(t)
		must(t, l.Lock(ctx, c, []netip.Addr{b}))
		must(t, l.Lock(ctx, c, []netip.Addr{a, b, v6}))
		want(t, c, false, a, b, v6)
		must(t, l.Unlock(ctx, c, []netip.Addr{b}))
		want(t, c, false, a, v6)
		must(t, l.Unlock(ctx, c, []netip.Addr{a, v6}))
		want(t, c, false)
	})
	t.Run("loopback never locked", func(t *testing.T) {
		c := target(t)
		must(t, l.Lock(ctx, c, []netip.Addr{lo, netip.MustParseAddr("::1")}))
		want(t, c, false)
	})
	t.Run("lock all after peers", func(t *testing.T) {
		c := target(t)
		must(t, l.Lock(ctx, c, []netip.Addr{a}))
		must(t, l.Lock(ctx, c, nil))
		want(t, c, true)
		must(t, l.Unlock(ctx, c, []netip.Addr{a})) // no "all but a": stays fully locked
		want(t, c, true)
		must(t, l.Unlock(ctx, c, nil))
		want(t, c, false)
	})
	t.Run("set replaces and restores a saved state", func(t *testing.T) {
		c := target(t)
		must(t, l.Lock(ctx, c, []netip.Addr{b, a}))
		saved, err := l.State(ctx, c)
		must(t, err)
		must(t, l.Set(ctx, c, netlock.State{All: true}))
		want(t, c, true)
		must(t, l.Set(ctx, c, saved))
		want(t, c, false, a, b)
		must(t, l.Set(ctx, c, netlock.State{Peers: []netip.Addr{lo, v6}})) // loopback dropped
		want(t, c, false, v6)
		must(t, l.Set(ctx, c, netlock.State{}))
		want(t, c, false)
	})
	t.Run("harden turns off retransmit collapsing", func(t *testing.T) {
		c := target(t)
		if on, err := l.Hardened(ctx, c); err != nil || on {
			t.Fatalf("fresh namespace: hardened %v, %v; want false", on, err)
		}
		must(t, l.Harden(ctx, c))
		must(t, l.Harden(ctx, c))
		if on, err := l.Hardened(ctx, c); err != nil || !on {
			t.Fatalf("after Harden: hardened %v, %v; want true", on, err)
		}
		want(t, c, false) // hardening locks nothing
	})
	t.Run("gone container", func(t *testing.T) {
		c := container.Ref{ID: "gone", Name: "gone", Pid: 0}
		if err := l.Lock(ctx, c, nil); !errors.Is(err, netlock.ErrNamespace) {
			t.Fatalf("Lock of a container without process: err = %v, want ErrNamespace", err)
		}
		if err := l.Harden(ctx, c); !errors.Is(err, netlock.ErrNamespace) {
			t.Fatalf("Harden of a container without process: err = %v, want ErrNamespace", err)
		}
	})
}

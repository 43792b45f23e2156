package netlock

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// ErrNamespace: the container's network namespace cannot be entered (it exited?).
var ErrNamespace = errors.New("netlock: network namespace unavailable")

// State is the lock state of one container.
type State struct {
	// All is true when every non-loopback packet is dropped.
	All bool
	// Peers are the addresses whose packets are dropped (when All is false), sorted.
	Peers []netip.Addr
}

// Locked tells whether anything is locked.
func (s State) Locked() bool { return s.All || len(s.Peers) > 0 }

// Locker locks and unlocks containers' networks.
type Locker interface {
	// Lock drops packets to and from peers (all addresses when peers is empty), adding to
	// what is already locked. Loopback addresses are ignored: loopback is never locked.
	Lock(ctx context.Context, c container.Ref, peers []netip.Addr) error
	// Unlock stops dropping packets for peers (everything when peers is empty). Unlocking
	// a container that is not locked is not an error.
	Unlock(ctx context.Context, c container.Ref, peers []netip.Addr) error
	// State reports what is locked.
	State(ctx context.Context, c container.Ref) (State, error)
	// Set replaces what is locked with s in one step (no window in which less is
	// locked than in both the old and the new state), e.g. to put back a State saved
	// before a temporary full lock.
	Set(ctx context.Context, c container.Ref, s State) error
	// Harden makes the TCP sockets of c's network namespace dumpable (package
	// tcpharden: retransmit collapsing off, for the namespace's life). Idempotent.
	Harden(ctx context.Context, c container.Ref) error
	// Hardened reports whether Harden's setting is in place.
	Hardened(ctx context.Context, c container.Ref) (bool, error)
}

// Apply computes the state after Lock (lock=true) or Unlock of peers. Pure.
func Apply(s State, lock bool, peers []netip.Addr) State {
	all := len(peers) == 0
	peers = normalize(peers)
	switch {
	case !all && len(peers) == 0:
		// Only loopback or invalid addresses were given: nothing to change.
		return s
	case lock && all:
		return State{All: true}
	case lock:
		if s.All {
			return s
		}
		return State{Peers: normalize(append(slices.Clone(s.Peers), peers...))}
	case all:
		return State{}
	case s.All:
		// Unlocking single peers of a fully locked container leaves it fully locked:
		// there is no "all but" rule.
		return s
	default:
		out := slices.DeleteFunc(slices.Clone(s.Peers), func(a netip.Addr) bool { return slices.Contains(peers, a) })
		return State{Peers: out}
	}
}

// normalState returns s with its peers normalized (and dropped when All is set).
func normalState(s State) State {
	if s.All {
		return State{All: true}
	}
	return State{Peers: normalize(s.Peers)}
}

// normalize unmaps, drops loopback/invalid addresses, sorts and deduplicates.
func normalize(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		a = a.Unmap()
		if a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

package netlock

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Fake is an in-memory Locker. Containers with Pid <= 0 behave as gone (ErrNamespace).
type Fake struct {
	mu       sync.Mutex
	state    map[string]State
	hardened map[string]bool
}

var _ Locker = (*Fake)(nil)

// NewFake returns a Fake with nothing locked.
func NewFake() *Fake { return &Fake{state: map[string]State{}, hardened: map[string]bool{}} }

// Harden implements Locker.
func (f *Fake) Harden(_ context.Context, c container.Ref) error {
	if c.Pid <= 0 {
		return fmt.Errorf("netlock %s: %w", c, ErrNamespace)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hardened[c.ID] = true
	return nil
}

// Hardened implements Locker.
func (f *Fake) Hardened(_ context.Context, c container.Ref) (bool, error) {
	if c.Pid <= 0 {
		return false, fmt.Errorf("netlock %s: %w", c, ErrNamespace)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hardened[c.ID], nil
}

func (f *Fake) change(c container.Ref, lock bool, peers []netip.Addr) error {
	if c.Pid <= 0 {
		return fmt.Errorf("netlock %s: %w", c, ErrNamespace)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Apply(f.state[c.ID], lock, peers)
	if s.Locked() {
		f.state[c.ID] = s
	} else {
		delete(f.state, c.ID)
	}
	return nil
}

// Lock implements Locker.
func (f *Fake) Lock(_ context.Context, c container.Ref, peers []netip.Addr) error {
	return f.change(c, true, peers)
}

// Unlock implements Locker.
func (f *Fake) Unlock(_ context.Context, c container.Ref, peers []netip.Addr) error {
	return f.change(c, false, peers)
}

// Set implements Locker.
func (f *Fake) Set(_ context.Context, c container.Ref, s State) error {
	if c.Pid <= 0 {
		return fmt.Errorf("netlock %s: %w", c, ErrNamespace)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s = normalState(s); s.Locked() {
		f.state[c.ID] = s
	} else {
		delete(f.state, c.ID)
	}
	return nil
}

// State implements Locker.
func (f *Fake) State(_ context.Context, c container.Ref) (State, error) {
	if c.Pid <= 0 {
		return State{}, fmt.Errorf("netlock %s: %w", c, ErrNamespace)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[c.ID], nil
}

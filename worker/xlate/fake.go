package xlate

import (
	"context"
	"net/netip"
	"sync"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Fake is an in-memory Translator for tests; SetInUse says what InUse answers.
type Fake struct {
	mu    sync.Mutex
	rules map[string][]Rule              // container id -> rules
	inUse map[string]map[netip.Addr]bool // container id -> old -> in use
}

var _ Translator = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{rules: map[string][]Rule{}, inUse: map[string]map[netip.Addr]bool{}}
}

// Add implements Translator.
func (f *Fake) Add(_ context.Context, c container.Ref, old, new netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rules, err := Apply(f.rules[c.ID], true, old, new)
	if err != nil {
		return err
	}
	f.rules[c.ID] = rules
	return nil
}

// Remove implements Translator.
func (f *Fake) Remove(_ context.Context, c container.Ref, old netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rules, err := Apply(f.rules[c.ID], false, old, netip.Addr{})
	if err != nil {
		return err
	}
	f.rules[c.ID] = rules
	return nil
}

// Rules implements Translator.
func (f *Fake) Rules(_ context.Context, c container.Ref) ([]Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Rule(nil), f.rules[c.ID]...), nil
}

// InUse implements Translator: what SetInUse said (false by default).
func (f *Fake) InUse(_ context.Context, c container.Ref, old netip.Addr) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse[c.ID][old.Unmap()], nil
}

// SetInUse makes InUse of old in c answer used.
func (f *Fake) SetInUse(c container.Ref, old netip.Addr, used bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inUse[c.ID] == nil {
		f.inUse[c.ID] = map[netip.Addr]bool{}
	}
	f.inUse[c.ID][old.Unmap()] = used
}

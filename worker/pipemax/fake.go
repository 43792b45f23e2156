package pipemax

import (
	"fmt"
	"sync"
)

// Fake is an in-memory Governor for tests: one process's view, with the same rules
// (raise while held, put back after the last release).
type Fake struct {
	mu      sync.Mutex
	value   int
	saved   int // 0: not raised by us
	holders int
	raises  int
	// ReadOnly, when set, is CanRaise's and Raise's error.
	ReadOnly error
}

// NewFake returns a Fake whose setting is value.
func NewFake(value int) *Fake { return &Fake{value: value} }

// Current implements the Governor's method.
func (f *Fake) Current() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value, nil
}

// CanRaise implements the Governor's method.
func (f *Fake) CanRaise() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ReadOnly
}

// Raise implements the Governor's method.
func (f *Fake) Raise(atLeast int) (func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value < atLeast {
		if f.ReadOnly != nil {
			return nil, fmt.Errorf("set pipe-max-size to %d: %w", atLeast, f.ReadOnly)
		}
		if f.saved == 0 {
			f.saved = f.value
		}
		f.value = atLeast
	}
	f.holders++
	f.raises++
	var once sync.Once
	return func() error {
		once.Do(func() {
			f.mu.Lock()
			f.holders--
			f.mu.Unlock()
			_ = f.Reconcile()
		})
		return nil
	}, nil
}

// Reconcile implements the Governor's method.
func (f *Fake) Reconcile() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holders == 0 && f.saved != 0 {
		f.value, f.saved = f.saved, 0
	}
	return nil
}

// Holders is the number of unreleased raises; Raises counts every Raise.
func (f *Fake) Holders() (holders, raises int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holders, f.raises
}

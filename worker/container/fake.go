package container

import (
	"context"
	"fmt"
	"sync"
)

// Fake is an in-memory Inspector for tests of code that consumes one.
type Fake struct {
	mu         sync.Mutex
	containers map[string]fakeEntry
}

type fakeEntry struct {
	ref  Ref
	spec Spec
}

var _ Inspector = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{containers: map[string]fakeEntry{}} }

// Add registers a container under its ID and name; Pid 0 means not running.
func (f *Fake) Add(ref Ref, spec Spec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[ref.ID] = fakeEntry{ref, spec}
	if ref.Name != "" {
		f.containers[ref.Name] = fakeEntry{ref, spec}
	}
}

func (f *Fake) get(nameOrID string) (fakeEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.containers[nameOrID]
	if !ok {
		return e, fmt.Errorf("container %q: %w", nameOrID, ErrNotFound)
	}
	return e, nil
}

// Resolve implements Inspector.
func (f *Fake) Resolve(_ context.Context, nameOrID string) (Ref, error) {
	e, err := f.get(nameOrID)
	if err != nil {
		return Ref{}, err
	}
	if e.ref.Pid <= 0 {
		return e.ref, fmt.Errorf("container %s: %w", e.ref, ErrNotRunning)
	}
	return e.ref, nil
}

// Spec implements Inspector.
func (f *Fake) Spec(_ context.Context, nameOrID string) (Spec, error) {
	e, err := f.get(nameOrID)
	return e.spec, err
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// LockHolder implements Locker.
func (s *Memory) LockHolder(_ context.Context, stack string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[stack]; ok {
		return l.owner, nil
	}
	return "", nil
}

// PutPolicy implements Policies.
func (s *Memory) PutPolicy(_ context.Context, p *PolicyState) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: encode policy state of stack %s: %w", p.Stack, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pols[p.Stack]; e.rev != p.Revision {
		return fmt.Errorf("policy state of stack %s (revision %d, stored %d): %w", p.Stack, p.Revision, e.rev, ErrConflict)
	}
	s.rev++
	s.pols[p.Stack] = memEntry{data: b, rev: s.rev}
	p.Revision = s.rev
	return nil
}

// ListPolicies implements Policies.
func (s *Memory) ListPolicies(context.Context) ([]*PolicyState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*PolicyState
	for stack, e := range s.pols {
		p := &PolicyState{}
		if err := json.Unmarshal(e.data, p); err != nil {
			return nil, fmt.Errorf("policy state of stack %s: %w", stack, ErrCorrupt)
		}
		p.Revision = e.rev
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack < out[j].Stack })
	return out, nil
}

// DeletePolicy implements Policies.
func (s *Memory) DeletePolicy(_ context.Context, stack string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pols, stack)
	return nil
}

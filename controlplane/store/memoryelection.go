package store

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemoryElection is the in-memory fake of Elector: candidates lead in the order they
// entered. Kill drops a candidate as if its lease lapsed.
type MemoryElection struct {
	mu      sync.Mutex
	cands   []*memCandidate
	changed chan struct{} // closed and replaced on every change
}

type memCandidate struct {
	e    *MemoryElection
	c    Candidate
	lost chan struct{}
	once sync.Once
}

var _ Elector = (*MemoryElection)(nil)

// NewMemoryElection returns an empty election.
func NewMemoryElection() *MemoryElection {
	return &MemoryElection{changed: make(chan struct{})}
}

// remove drops mc and wakes the waiting candidates; s.mu held.
func (s *MemoryElection) remove(mc *memCandidate) bool {
	for i, x := range s.cands {
		if x == mc {
			s.cands = append(s.cands[:i:i], s.cands[i+1:]...)
			close(s.changed)
			s.changed = make(chan struct{})
			return true
		}
	}
	return false
}

// Campaign implements Elector.
func (s *MemoryElection) Campaign(ctx context.Context, c Candidate) (Leadership, error) {
	c.Leader, c.LeaderSince = false, time.Time{}
	mc := &memCandidate{e: s, c: c, lost: make(chan struct{})}
	s.mu.Lock()
	s.cands = append(s.cands, mc)
	for {
		if s.cands[0] == mc {
			mc.c.Leader, mc.c.LeaderSince = true, time.Now().UTC()
			s.mu.Unlock()
			return mc, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.remove(mc)
			s.mu.Unlock()
			return nil, ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
		if !s.has(mc) {
			// Killed while waiting.
			s.mu.Unlock()
			return nil, ErrLeadershipLost
		}
	}
}

func (s *MemoryElection) has(mc *memCandidate) bool {
	for _, x := range s.cands {
		if x == mc {
			return true
		}
	}
	return false
}

// Candidates implements Elector.
func (s *MemoryElection) Candidates(context.Context) ([]Candidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Candidate, len(s.cands))
	for i, mc := range s.cands {
		out[i] = mc.c
		out[i].Leader = i == 0
	}
	return out, nil
}

// Kill drops the candidate named name as if its lease lapsed: its Leadership's Lost
// closes and the next candidate leads. False if no such candidate.
func (s *MemoryElection) Kill(name string) bool {
	s.mu.Lock()
	var victim *memCandidate
	for _, mc := range s.cands {
		if mc.c.Name == name {
			victim = mc
			break
		}
	}
	if victim != nil {
		s.remove(victim)
	}
	s.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.once.Do(func() { close(victim.lost) })
	return true
}

func (mc *memCandidate) Lost() <-chan struct{} { return mc.lost }

func (mc *memCandidate) Resign(context.Context) error {
	mc.e.mu.Lock()
	mc.e.remove(mc)
	mc.e.mu.Unlock()
	return nil
}

// ListLocks implements Locker.
func (s *Memory) ListLocks(context.Context) ([]LockInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LockInfo, 0, len(s.locks))
	for st, l := range s.locks {
		out = append(out, LockInfo{Stack: st, Owner: l.owner})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack < out[j].Stack })
	return out, nil
}

package coordinator

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
)

// gate is the stack's switch between the user's operations and scheduled runs: a
// user's snapshot, restore, migrate or rm holds it shared (and waits for a scheduled
// run in progress, instead of failing busy); a scheduled run takes it exclusively
// only when no user operation holds it (else it is skipped and reported).
func (s *Service) gate(stack string) *sync.RWMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gates[stack]
	if g == nil {
		g = &sync.RWMutex{}
		s.gates[stack] = g
	}
	return g
}

// userOp holds stack's gate for a user's operation; call the result when it ends.
// Without a policy reconciler there is nothing to wait for.
func (s *Service) userOp(stack string) (release func()) {
	if s.rec == nil || stack == "" {
		return func() {}
	}
	g := s.gate(stack)
	g.RLock()
	return g.RUnlock
}

// userOpOf is userOp for an operation on snapshot id (its stack).
func (s *Service) userOpOf(ctx context.Context, id string) (release func()) {
	if s.rec == nil || api.ValidID(id) != nil {
		return func() {}
	}
	m, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return func() {}
	}
	return s.userOp(m.Stack)
}

// policyDefaults fills in a user's snapshot request the stack's policy algorithm
// timeout, replicas and excluded services when the request names none.
func (s *Service) policyDefaults(req *api.SnapshotRequest) {
	if s.rec == nil || (req.Algorithm != "" && req.Timeout > 0 && req.Replicas > 0 && req.Exclude != nil) {
		return
	}
	s.rec.mu.Lock()
	st := s.rec.states[req.Stack]
	var raw []byte
	if st != nil {
		raw = st.Policy
	}
	s.rec.mu.Unlock()
	var p policy.Policy
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil {
		return
	}
	if req.Algorithm == "" {
		req.Algorithm = p.Algorithm
	}
	if req.Timeout <= 0 {
		req.Timeout = p.Timeout
	}
	if req.Replicas <= 0 {
		req.Replicas = p.Replicas
	}
	if req.Exclude == nil {
		req.Exclude = p.Excluded
	}
}

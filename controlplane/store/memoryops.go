package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// PutOperation implements Operations.
func (s *Memory) PutOperation(_ context.Context, op *Operation) error {
	b, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("store: encode operation %s: %w", op.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.ops[op.ID]; e.rev != op.Revision {
		return fmt.Errorf("operation %s (revision %d, stored %d): %w", op.ID, op.Revision, e.rev, ErrConflict)
	}
	s.rev++
	s.ops[op.ID] = memEntry{data: b, rev: s.rev}
	op.Revision = s.rev
	return nil
}

// ListOperations implements Operations.
func (s *Memory) ListOperations(context.Context) ([]*Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Operation
	for id, e := range s.ops {
		op := &Operation{}
		if err := json.Unmarshal(e.data, op); err != nil {
			return nil, fmt.Errorf("operation %s: %w", id, ErrCorrupt)
		}
		op.Revision = e.rev
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteOperation implements Operations.
func (s *Memory) DeleteOperation(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ops, id)
	return nil
}

package stack

import (
	"context"
	"fmt"
)

// Static is an in-memory Resolver (tests, and restore planning from a manifest).
type Static map[string]*Stack

var _ Resolver = Static(nil)

// Resolve implements Resolver.
func (s Static) Resolve(_ context.Context, name string) (*Stack, error) {
	st, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("stack %q: %w", name, ErrNotFound)
	}
	cp := *st
	return &cp, nil
}

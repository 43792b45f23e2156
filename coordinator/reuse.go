package coordinator

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// reusedOrphans returns the image sets m's containers reuse from earlier snapshots
// (minimal) whose own snapshot is gone from the store and that no other manifest of
// the stack points at. rm of their snapshot kept them for m; rm of m drops them.
func (s *Service) reusedOrphans(ctx context.Context, m *store.Manifest) ([]setRef, error) {
	ms, err := s.cfg.Store.List(ctx, m.Stack)
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	used := map[string]bool{}
	for _, o := range ms {
		exists[o.ID] = true
		if o.ID == m.ID {
			continue
		}
		for _, c := range o.Containers {
			if c.Images != nil {
				used[filepath.Base(c.Images.Dir)] = true
			}
		}
	}
	var out []setRef
	seen := map[setRef]bool{}
	for _, c := range m.Containers {
		if c.Images == nil || c.Images.Node == "" {
			continue
		}
		set := filepath.Base(c.Images.Dir)
		if set == node.SetID(m.ID, c.Key()) || used[set] {
			continue // m's own (setsOf lists it), or still someone else's
		}
		owner := ownerOf(set, c.Key())
		if owner == "" || exists[owner] {
			continue // not a set name this coordinator gives, or its snapshot keeps it
		}
		r := setRef{c.Images.Node, set}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// ownerOf is the snapshot a set of container key is named after (node.SetID), "" if
// set is not such a name.
func ownerOf(set, key string) string {
	if owner, ok := strings.CutSuffix(set, "."+key); ok && node.SetID(owner, key) == set {
		return owner
	}
	return ""
}

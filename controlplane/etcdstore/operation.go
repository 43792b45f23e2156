package etcdstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

func (s *Store) operationKey(id string) string { return s.prefix + "/operations/" + id }

// PutOperation implements store.Operations: a transaction comparing the key's
// modification revision (0: absent) with op.Revision.
func (s *Store) PutOperation(ctx context.Context, op *store.Operation) error {
	rev, err := s.putIfRevision(ctx, s.operationKey(op.ID), op, op.Revision, "the journal of operation "+op.ID)
	if err != nil {
		return err
	}
	op.Revision = rev
	return nil
}

// ListOperations implements store.Operations.
func (s *Store) ListOperations(ctx context.Context) ([]*store.Operation, error) {
	out, err := listJSON(ctx, s, s.prefix+"/operations/", "journaled operation",
		func(op *store.Operation, rev int64) { op.Revision = rev },
		func(k string) string { return "delete key " + k + " once its stack is checked by hand" })
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteOperation implements store.Operations.
func (s *Store) DeleteOperation(ctx context.Context, id string) error {
	if _, err := s.cli.Delete(ctx, s.operationKey(id)); err != nil {
		return fmt.Errorf("etcdstore: delete the journal of operation %s: %w", id, err)
	}
	return nil
}

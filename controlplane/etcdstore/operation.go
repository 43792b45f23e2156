package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

func (s *Store) operationKey(id string) string { return s.prefix + "/operations/" + id }

// PutOperation implements store.Operations: a transaction comparing the key's
// modification revision (0: absent) with op.Revision.
func (s *Store) PutOperation(ctx context.Context, op *store.Operation) error {
	b, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("etcdstore: encode operation %s: %w", op.ID, err)
	}
	k := s.operationKey(op.ID)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", op.Revision)).
		Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: journal operation %s: %w", op.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("operation %s (revision %d): %w", op.ID, op.Revision, store.ErrConflict)
	}
	op.Revision = resp.Header.Revision
	return nil
}

// ListOperations implements store.Operations.
func (s *Store) ListOperations(ctx context.Context) ([]*store.Operation, error) {
	pfx := s.prefix + "/operations/"
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list journaled operations: %w", err)
	}
	var out []*store.Operation
	for _, kv := range resp.Kvs {
		op := &store.Operation{}
		if err := json.Unmarshal(kv.Value, op); err != nil {
			return nil, fmt.Errorf("operation %s: %w (delete key %s once its stack is checked by hand)", strings.TrimPrefix(string(kv.Key), pfx), store.ErrCorrupt, kv.Key)
		}
		op.Revision = kv.ModRevision
		out = append(out, op)
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

package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// putIfRevision writes v as JSON at key k in one transaction that compares k's
// modification revision with rev (0: k absent), and returns the new revision; what
// names the record in errors. A lost race is store.ErrConflict.
func (s *Store) putIfRevision(ctx context.Context, k string, v any, rev int64, what string) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: encode %s: %w", what, err)
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcdstore: write %s: %w", what, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s (revision %d): %w", what, rev, store.ErrConflict)
	}
	return resp.Header.Revision, nil
}

// listJSON decodes every value under prefix pfx into a new T, given its modification
// revision by setRev. what names the records in errors; fix says what to do with one
// that does not decode (store.ErrCorrupt), given its key.
func listJSON[T any](ctx context.Context, s *Store, pfx, what string, setRev func(*T, int64), fix func(key string) string) ([]*T, error) {
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list %s: %w", what, err)
	}
	var out []*T
	for _, kv := range resp.Kvs {
		v := new(T)
		if err := json.Unmarshal(kv.Value, v); err != nil {
			return nil, fmt.Errorf("%s %s: %w (%s)", what, strings.TrimPrefix(string(kv.Key), pfx), store.ErrCorrupt, fix(string(kv.Key)))
		}
		setRev(v, kv.ModRevision)
		out = append(out, v)
	}
	return out, nil
}

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

func (s *Store) policyKey(stack string) string { return s.prefix + "/policies/" + stack }

// LockHolder implements store.Locker.
func (s *Store) LockHolder(ctx context.Context, stack string) (string, error) {
	resp, err := s.cli.Get(ctx, s.lockKey(stack))
	if err != nil {
		return "", fmt.Errorf("etcdstore: read lock of stack %s: %w", stack, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// PutPolicy implements store.Policies: a transaction comparing the key's
// modification revision (0: absent) with p.Revision.
func (s *Store) PutPolicy(ctx context.Context, p *store.PolicyState) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("etcdstore: encode policy state of stack %s: %w", p.Stack, err)
	}
	k := s.policyKey(p.Stack)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", p.Revision)).
		Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: put policy state of stack %s: %w", p.Stack, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("policy state of stack %s (revision %d): %w", p.Stack, p.Revision, store.ErrConflict)
	}
	p.Revision = resp.Header.Revision
	return nil
}

// ListPolicies implements store.Policies.
func (s *Store) ListPolicies(ctx context.Context) ([]*store.PolicyState, error) {
	pfx := s.prefix + "/policies/"
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list policy states: %w", err)
	}
	var out []*store.PolicyState
	for _, kv := range resp.Kvs {
		p := &store.PolicyState{}
		if err := json.Unmarshal(kv.Value, p); err != nil {
			return nil, fmt.Errorf("policy state %s: %w (delete key %s to reset it)", strings.TrimPrefix(string(kv.Key), pfx), store.ErrCorrupt, kv.Key)
		}
		p.Revision = kv.ModRevision
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack < out[j].Stack })
	return out, nil
}

// DeletePolicy implements store.Policies.
func (s *Store) DeletePolicy(ctx context.Context, stack string) error {
	if _, err := s.cli.Delete(ctx, s.policyKey(stack)); err != nil {
		return fmt.Errorf("etcdstore: delete policy state of stack %s: %w", stack, err)
	}
	return nil
}

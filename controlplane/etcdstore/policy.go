package etcdstore

import (
	"context"
	"fmt"
	"sort"

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
	rev, err := s.putIfRevision(ctx, s.policyKey(p.Stack), p, p.Revision, "policy state of stack "+p.Stack)
	if err != nil {
		return err
	}
	p.Revision = rev
	return nil
}

// ListPolicies implements store.Policies.
func (s *Store) ListPolicies(ctx context.Context) ([]*store.PolicyState, error) {
	out, err := listJSON(ctx, s, s.prefix+"/policies/", "policy state",
		func(p *store.PolicyState, rev int64) { p.Revision = rev },
		func(k string) string { return "delete key " + k + " to reset it" })
	if err != nil {
		return nil, err
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

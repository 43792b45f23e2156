package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// DefaultLeaderTTL is the lease of a coordinator's candidacy: a leader that dies
// (kill -9, host lost, cut off from etcd) is replaced by a standby this long after
// its last renewal (plus etcd's lease check, under a second).
const DefaultLeaderTTL = 5 * time.Second

// Elector is a store.Elector over etcd's election recipe (clientv3/concurrency): each
// candidate is a key under <prefix>/election/ bound to its own lease; the one with the
// lowest create revision leads.
type Elector struct {
	s   *Store
	ttl time.Duration
}

var _ store.Elector = (*Elector)(nil)

// Elector returns the coordinators' elector on s; ttl <= 0 means DefaultLeaderTTL
// (whole seconds, at least 1).
func (s *Store) Elector(ttl time.Duration) *Elector {
	if ttl <= 0 {
		ttl = DefaultLeaderTTL
	}
	return &Elector{s: s, ttl: ttl}
}

func (e *Elector) prefix() string { return e.s.prefix + "/election" }

type leadership struct {
	sess *concurrency.Session
	el   *concurrency.Election
}

func (l *leadership) Lost() <-chan struct{} { return l.sess.Done() }
func (l *leadership) Resign(ctx context.Context) error {
	return errors.Join(l.el.Resign(ctx), l.sess.Close())
}

// Campaign implements store.Elector. A candidate of the same name on the same host
// whose process is gone (a coordinator restarted by its supervisor) is a dead
// predecessor: its lease is revoked at once instead of waiting for its TTL (an
// embedded etcd restarted with its coordinator renews every lease in full).
func (e *Elector) Campaign(ctx context.Context, c store.Candidate) (store.Leadership, error) {
	e.revokeDeadPredecessors(ctx, c)
	secs := max(int(e.ttl/time.Second), 1)
	// The lease is granted under ctx (an unreachable etcd does not block a stop); the
	// session only keeps it alive.
	lease, err := e.s.cli.Grant(ctx, int64(secs))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("etcdstore: election lease: %w", err)
	}
	sess, err := concurrency.NewSession(e.s.cli, concurrency.WithTTL(secs), concurrency.WithLease(lease.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: election session: %w", err)
	}
	el := concurrency.NewElection(sess, e.prefix())
	c.Leader, c.LeaderSince = false, time.Time{}
	b, _ := json.Marshal(c)
	// A standby whose own lease lapses while it waits (cut off from etcd) stops
	// waiting: its key is gone, it would lead without one.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	if err := el.Campaign(cctx, string(b)); err != nil {
		sess.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		select {
		case <-sess.Done():
			return nil, fmt.Errorf("etcdstore: campaign for leadership: %w (this candidate's lease lapsed while it waited: etcd unreachable?)", store.ErrLeadershipLost)
		default:
		}
		return nil, fmt.Errorf("etcdstore: campaign for leadership: %w", err)
	}
	c.Leader, c.LeaderSince = true, time.Now().UTC()
	b, _ = json.Marshal(c)
	if err := el.Proclaim(ctx, string(b)); err != nil {
		_ = el.Resign(context.WithoutCancel(ctx))
		sess.Close()
		return nil, fmt.Errorf("etcdstore: proclaim leadership: %w", err)
	}
	return &leadership{sess: sess, el: el}, nil
}

// candidates returns the election's keys and values, oldest (the leader) first.
func (e *Elector) candidates(ctx context.Context) ([]*candidateKV, error) {
	resp, err := e.s.cli.Get(ctx, e.prefix()+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list coordinators: %w", err)
	}
	out := make([]*candidateKV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ck := &candidateKV{rev: kv.CreateRevision, lease: clientv3.LeaseID(kv.Lease)}
		if err := json.Unmarshal(kv.Value, &ck.c); err != nil {
			ck.c = store.Candidate{Name: "? (undecodable record " + path.Base(string(kv.Key)) + ")"}
		}
		out = append(out, ck)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rev < out[j].rev })
	return out, nil
}

type candidateKV struct {
	c     store.Candidate
	rev   int64
	lease clientv3.LeaseID
}

// Candidates implements store.Elector.
func (e *Elector) Candidates(ctx context.Context) ([]store.Candidate, error) {
	cks, err := e.candidates(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]store.Candidate, len(cks))
	for i, ck := range cks {
		out[i] = ck.c
		out[i].Leader = i == 0
		if i > 0 {
			out[i].LeaderSince = time.Time{}
		}
	}
	return out, nil
}

func (e *Elector) revokeDeadPredecessors(ctx context.Context, me store.Candidate) {
	cks, err := e.candidates(ctx)
	if err != nil {
		return
	}
	for _, ck := range cks {
		if ck.c.Name != me.Name || ck.c.Host != me.Host || ck.c.PID == me.PID || ck.c.PID <= 0 || processAlive(ck.c.PID) {
			continue
		}
		_, _ = e.s.cli.Revoke(ctx, ck.lease)
	}
}

// processAlive says whether a process pid runs on this host.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ListLocks implements store.Locker.
func (s *Store) ListLocks(ctx context.Context) ([]store.LockInfo, error) {
	pfx := s.prefix + "/stacks/"
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list stack locks: %w", err)
	}
	var out []store.LockInfo
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if path.Base(k) != "lock" {
			continue
		}
		out = append(out, store.LockInfo{Stack: path.Base(path.Dir(k)), Owner: string(kv.Value)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stack < out[j].Stack })
	return out, nil
}

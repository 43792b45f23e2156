package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// DefaultPrefix is the versioned key prefix.
const DefaultPrefix = "/swarmckpt/v1"

// Config says how to reach etcd.
type Config struct {
	// Endpoints of the etcd cluster, e.g. http://127.0.0.1:12379. Required.
	Endpoints []string
	// Prefix of every key. Default DefaultPrefix.
	Prefix string
	// DialTimeout bounds the first connection. Default 5s.
	DialTimeout time.Duration
	// Username and Password for etcd authentication (optional).
	Username, Password string
	// CAFile is the PEM CA that verifies etcd's server certificate (https://
	// endpoints); empty: the system's CAs.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key presented to an
	// etcd that requires client certificates (the embedded one does: its
	// embedded.EtcdCredentials). Both or neither.
	CertFile, KeyFile string
}

// tlsConfig is the client TLS of cfg; nil when cfg names no TLS file.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: etcd CA (--etcd-cacert): %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("etcdstore: etcd CA file %s holds no PEM certificate (--etcd-cacert)", cfg.CAFile)
		}
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("etcdstore: give the etcd client certificate and its key together (--etcd-cert and --etcd-key)")
	}
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: etcd client certificate %s with key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// Store is a store.Store over etcd.
type Store struct {
	cli    *clientv3.Client
	prefix string
}

var _ store.Store = (*Store)(nil)

// Open connects to etcd and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no etcd endpoints (set --etcd)")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout,
		Username: cfg.Username, Password: cfg.Password, TLS: tc, Logger: nopLogger()})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connect to %v: %w", cfg.Endpoints, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, cfg.Prefix+"/ping"); err != nil {
		cli.Close()
		hint := "is the coordinator or etcd running?"
		if tc == nil {
			hint += " An etcd that serves TLS needs https:// endpoints and its CA (--etcd-cacert), and one that requires client certificates a certificate and key (--etcd-cert, --etcd-key)"
		} else {
			hint += " Do the endpoints use https://, does --etcd-cacert hold the CA that signed etcd's certificate, and is --etcd-cert signed by a CA etcd trusts?"
		}
		if es := err.Error(); strings.Contains(es, "user name") || strings.Contains(es, "authentication failed") || strings.Contains(es, "permission denied") {
			hint = "etcd's authentication refused this client: give --etcd-user and its password (--etcd-password-file or $SWARMCKPT_ETCD_PASSWORD), a user with read-write on " + cfg.Prefix
		}
		return nil, fmt.Errorf("etcdstore: etcd at %v does not answer: %w (%s)", cfg.Endpoints, err, hint)
	}
	return &Store{cli: cli, prefix: strings.TrimRight(cfg.Prefix, "/")}, nil
}

// Client exposes the etcd client (diagnostics, tests).
func (s *Store) Client() *clientv3.Client { return s.cli }

func (s *Store) snapKey(id string) string     { return s.prefix + "/snapshots/" + id }
func (s *Store) lockKey(stack string) string  { return s.prefix + "/stacks/" + stack + "/lock" }
func (s *Store) workerKey(node string) string { return s.prefix + "/workers/" + node }
func (s *Store) epochKey(stack string) string { return s.prefix + "/stacks/" + stack + "/epoch" }

// Create implements store.Snapshots.
func (s *Store) Create(ctx context.Context, m *store.Manifest) error {
	if err := writable(m); err != nil {
		return err
	}
	m.Summarize()
	k := s.snapKey(m.ID)
	resp, err := s.write(ctx, m, nil, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}, "create")
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("snapshot %s: %w", m.ID, store.ErrExists)
	}
	m.Revision = resp.Header.Revision
	return nil
}

// writable refuses what cannot be stored: no id, or a header read by Headers.
func writable(m *store.Manifest) error {
	if m.ID == "" {
		return errors.New("store: manifest without id")
	}
	if m.HeaderOnly() {
		return fmt.Errorf("snapshot %s: %w", m.ID, store.ErrHeaderOnly)
	}
	return nil
}

// Get implements store.Snapshots: the header and its parts in one read.
func (s *Store) Get(ctx context.Context, id string) (*store.Manifest, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.snapKey(id)), clientv3.OpGet(s.partsPrefix(id), clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcdstore: get snapshot %s: %w", id, err)
	}
	hk := resp.Responses[0].GetResponseRange().Kvs
	if len(hk) == 0 {
		return nil, fmt.Errorf("snapshot %s: %w (list snapshots with 'swarmckpt ls')", id, store.ErrNotFound)
	}
	m, p, err := decodeHeader(id, hk[0].Value, hk[0].ModRevision)
	if err != nil || p == nil {
		return m, err
	}
	if err := assemble(m, p, s.partValues(resp.Responses[1].GetResponseRange().Kvs, id)); err != nil {
		return nil, err
	}
	return m, nil
}

// current reads the stored header of m and checks that m may replace it: same
// revision, and a final state stays. It returns the header's parts.
func (s *Store) current(ctx context.Context, m *store.Manifest) (*parts, error) {
	resp, err := s.cli.Get(ctx, s.snapKey(m.ID))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: get snapshot %s: %w", m.ID, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("snapshot %s: %w", m.ID, store.ErrNotFound)
	}
	old, p, err := decodeHeader(m.ID, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return nil, err
	}
	if old.Revision != m.Revision {
		return nil, fmt.Errorf("snapshot %s (revision %d, stored %d): %w", m.ID, m.Revision, old.Revision, store.ErrConflict)
	}
	if old.State.Final() && old.State != m.State {
		return nil, fmt.Errorf("snapshot %s is %s: %w", m.ID, old.State, store.ErrFinal)
	}
	return p, nil
}

// Update implements store.Snapshots.
func (s *Store) Update(ctx context.Context, m *store.Manifest) error {
	if err := writable(m); err != nil {
		return err
	}
	base, err := s.current(ctx, m)
	if err != nil {
		return err
	}
	m.Summarize()
	k := s.snapKey(m.ID)
	resp, err := s.write(ctx, m, base, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", m.Revision)}, "update")
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("snapshot %s: %w", m.ID, store.ErrConflict)
	}
	m.Revision = resp.Header.Revision
	return nil
}

// Commit implements store.Snapshots.
func (s *Store) Commit(ctx context.Context, m *store.Manifest, lock store.Lock) error {
	if err := writable(m); err != nil {
		return err
	}
	if err := m.Complete(); err != nil {
		return err
	}
	el, ok := lock.(*etcdLock)
	if !ok || el.stack != m.Stack {
		return fmt.Errorf("commit snapshot %s: stack %s: %w", m.ID, m.Stack, store.ErrLockLost)
	}
	base, err := s.current(ctx, m)
	if err != nil {
		return err
	}
	c := *m
	c.State = store.StateCommitted
	c.Summarize()
	k, lk := s.snapKey(m.ID), s.lockKey(m.Stack)
	resp, err := s.write(ctx, &c, base, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(k), "=", m.Revision),
		clientv3.Compare(clientv3.LeaseValue(lk), "=", el.sess.Lease()),
	}, "commit")
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		// Tell which condition failed.
		if g, err := s.cli.Get(ctx, lk); err == nil && (len(g.Kvs) == 0 || clientv3.LeaseID(g.Kvs[0].Lease) != el.sess.Lease()) {
			return fmt.Errorf("commit snapshot %s: stack %s: %w", m.ID, m.Stack, store.ErrLockLost)
		}
		return fmt.Errorf("commit snapshot %s: %w", m.ID, store.ErrConflict)
	}
	m.State = store.StateCommitted
	m.Revision = resp.Header.Revision
	m.Summarize()
	return nil
}

// List implements store.Snapshots: every header and every part in one read; for one
// stack, its headers, then each of its snapshots whole (Get), so that the parts of
// other stacks are not read.
func (s *Store) List(ctx context.Context, stack string) ([]*store.Manifest, error) {
	if stack == "" {
		return s.list(ctx, stack, true)
	}
	hs, err := s.list(ctx, stack, false)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Manifest, 0, len(hs))
	for _, h := range hs {
		if h.State == store.StateCorrupt {
			out = append(out, h)
			continue
		}
		m, err := s.Get(ctx, h.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // removed meanwhile
		case errors.Is(err, store.ErrCorrupt):
			m = &store.Manifest{ID: h.ID, State: store.StateCorrupt, Reason: err.Error(), Revision: h.Revision}
		case err != nil:
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Headers implements store.Snapshots: the snapshot keys only.
func (s *Store) Headers(ctx context.Context, stack string) ([]*store.Manifest, error) {
	return s.list(ctx, stack, false)
}

func (s *Store) list(ctx context.Context, stack string, full bool) ([]*store.Manifest, error) {
	pfx := s.prefix + "/snapshots/"
	ops := []clientv3.Op{clientv3.OpGet(pfx, clientv3.WithPrefix())}
	if full {
		ops = append(ops, clientv3.OpGet(s.prefix+"/parts/", clientv3.WithPrefix()))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list snapshots: %w", err)
	}
	var pkvs []*mvccpb.KeyValue
	if full {
		pkvs = resp.Responses[1].GetResponseRange().Kvs
	}
	var out []*store.Manifest
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), pfx)
		m, p, err := decodeHeader(id, kv.Value, kv.ModRevision)
		switch {
		case err != nil:
		case !full:
			m = store.HeaderOf(m)
		case p != nil:
			err = assemble(m, p, s.partValues(pkvs, id))
		}
		if err != nil {
			m = &store.Manifest{ID: id, State: store.StateCorrupt, Reason: err.Error(), Revision: kv.ModRevision}
		}
		if stack == "" || m.Stack == stack || m.State == store.StateCorrupt {
			out = append(out, m)
		}
	}
	store.SortManifests(out)
	return out, nil
}

// Delete implements store.Snapshots: the header and every part in one transaction.
func (s *Store) Delete(ctx context.Context, id string) error {
	k := s.snapKey(id)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).
		Then(clientv3.OpDelete(k), clientv3.OpDelete(s.partsPrefix(id), clientv3.WithPrefix())).
		Else(clientv3.OpDelete(s.partsPrefix(id), clientv3.WithPrefix())).Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: delete snapshot %s: %w", id, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("snapshot %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// NextEpoch implements store.Snapshots: a compare-and-swap loop on the stack's epoch key.
func (s *Store) NextEpoch(ctx context.Context, stack string, atLeast uint64) (uint64, error) {
	k := s.epochKey(stack)
	for {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return 0, fmt.Errorf("etcdstore: read epoch of stack %s: %w", stack, err)
		}
		var cur uint64
		cmp := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			if cur, err = strconv.ParseUint(string(kv.Value), 10, 64); err != nil {
				return 0, fmt.Errorf("etcdstore: epoch of stack %s is %q, not a number (delete key %s to reset it): %w",
					stack, kv.Value, k, store.ErrCorrupt)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)
		}
		next := max(cur+1, atLeast)
		tx, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, strconv.FormatUint(next, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcdstore: write epoch of stack %s: %w", stack, err)
		}
		if tx.Succeeded {
			return next, nil
		}
		// Another coordinator took an epoch meanwhile: read again.
	}
}

type etcdLock struct {
	s     *Store
	stack string
	sess  *concurrency.Session
}

func (l *etcdLock) Stack() string         { return l.stack }
func (l *etcdLock) Lost() <-chan struct{} { return l.sess.Done() }
func (l *etcdLock) Unlock(ctx context.Context) error {
	_, err := l.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(l.s.lockKey(l.stack)), "=", l.sess.Lease())).
		Then(clientv3.OpDelete(l.s.lockKey(l.stack))).Commit()
	return errors.Join(err, l.sess.Close())
}

// LockStack implements store.Locker.
func (s *Store) LockStack(ctx context.Context, stack, owner string, ttl time.Duration) (store.Lock, error) {
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: lock stack %s: %w", stack, err)
	}
	k := s.lockKey(stack)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, owner, clientv3.WithLease(sess.Lease()))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("etcdstore: lock stack %s: %w", stack, err)
	}
	if !resp.Succeeded {
		sess.Close()
		holder := "?"
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			holder = string(r.Kvs[0].Value)
		}
		return nil, fmt.Errorf("stack %s is locked by %s: %w (wait for it to finish or abort it)", stack, holder, store.ErrLocked)
	}
	return &etcdLock{s: s, stack: stack, sess: sess}, nil
}

// BreakLock implements store.Locker.
func (s *Store) BreakLock(ctx context.Context, stack, owner string) error {
	k := s.lockKey(stack)
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", owner)).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: break lock of stack %s: %w", stack, err)
	}
	return nil
}

// RegisterWorker implements store.Workers.
func (s *Store) RegisterWorker(ctx context.Context, w store.Worker, ttl time.Duration) (func(context.Context) error, error) {
	if w.Node == "" {
		return nil, errors.New("etcdstore: register worker: empty node name")
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: register worker %s: %w", w.Node, err)
	}
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: register worker %s: %w", w.Node, err)
	}
	if _, err := s.cli.Put(ctx, s.workerKey(w.Node), string(b), clientv3.WithLease(sess.Lease())); err != nil {
		sess.Close()
		return nil, fmt.Errorf("etcdstore: register worker %s: %w", w.Node, err)
	}
	return func(ctx context.Context) error {
		_, err := s.cli.Delete(ctx, s.workerKey(w.Node))
		return errors.Join(err, sess.Close())
	}, nil
}

// ListWorkers implements store.Workers.
func (s *Store) ListWorkers(ctx context.Context) ([]store.Worker, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"/workers/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list workers: %w", err)
	}
	out := make([]store.Worker, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var w store.Worker
		if err := json.Unmarshal(kv.Value, &w); err != nil {
			return nil, fmt.Errorf("etcdstore: worker record %s: %w: %v", kv.Key, store.ErrCorrupt, err)
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.cli.Close() }

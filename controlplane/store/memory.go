package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Store. Manifests are kept JSON-encoded, as etcd keeps them,
// so that encoding problems show up in tests too. Locks never expire on their own;
// ExpireLock simulates a lease running out.
type Memory struct {
	mu      sync.Mutex
	rev     int64
	snaps   map[string]memEntry
	locks   map[string]*memLock
	workers map[string]Worker
	epochs  map[string]uint64
	pols    map[string]memEntry
	ops     map[string]memEntry
	xlates  map[string]memEntry // container + " " + old (memoryxlate.go)
}

type memEntry struct {
	data []byte
	rev  int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{snaps: map[string]memEntry{}, locks: map[string]*memLock{}, workers: map[string]Worker{}, epochs: map[string]uint64{}, pols: map[string]memEntry{}, ops: map[string]memEntry{},
		xlates: map[string]memEntry{}}
}

// PutRaw stores raw bytes as a manifest (to test corrupt manifests).
func (s *Memory) PutRaw(id string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.snaps[id] = memEntry{data: data, rev: s.rev}
}

// Create implements Snapshots.
func (s *Memory) Create(_ context.Context, m *Manifest) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.snaps[m.ID]; ok {
		return fmt.Errorf("snapshot %s: %w", m.ID, ErrExists)
	}
	s.rev++
	s.snaps[m.ID] = memEntry{data: b, rev: s.rev}
	m.Revision = s.rev
	return nil
}

// Get implements Snapshots.
func (s *Memory) Get(_ context.Context, id string) (*Manifest, error) {
	s.mu.Lock()
	e, ok := s.snaps[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("snapshot %s: %w (list snapshots with 'swarmckpt ls')", id, ErrNotFound)
	}
	return decode(id, e.data, e.rev)
}

func (s *Memory) checkCAS(m *Manifest) error {
	e, ok := s.snaps[m.ID]
	if !ok {
		return fmt.Errorf("snapshot %s: %w", m.ID, ErrNotFound)
	}
	if e.rev != m.Revision {
		return fmt.Errorf("snapshot %s (revision %d, stored %d): %w", m.ID, m.Revision, e.rev, ErrConflict)
	}
	old, err := decode(m.ID, e.data, e.rev)
	if err != nil {
		return err
	}
	if old.State.Final() && old.State != m.State {
		return fmt.Errorf("snapshot %s is %s: %w", m.ID, old.State, ErrFinal)
	}
	return nil
}

// Update implements Snapshots.
func (s *Memory) Update(_ context.Context, m *Manifest) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkCAS(m); err != nil {
		return err
	}
	s.rev++
	s.snaps[m.ID] = memEntry{data: b, rev: s.rev}
	m.Revision = s.rev
	return nil
}

// Commit implements Snapshots.
func (s *Memory) Commit(_ context.Context, m *Manifest, lock Lock) error {
	if m.headerOnly {
		return fmt.Errorf("commit snapshot %s: %w", m.ID, ErrHeaderOnly)
	}
	if err := m.Complete(); err != nil {
		return err
	}
	c := *m
	c.State = StateCommitted
	b, err := encode(&c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ml, ok := lock.(*memLock)
	if !ok || s.locks[m.Stack] != ml || ml.stack != m.Stack {
		return fmt.Errorf("commit snapshot %s: stack %s: %w", m.ID, m.Stack, ErrLockLost)
	}
	if err := s.checkCAS(m); err != nil {
		return err
	}
	s.rev++
	s.snaps[m.ID] = memEntry{data: b, rev: s.rev}
	m.State = StateCommitted
	m.Revision = s.rev
	m.Summarize()
	return nil
}

// List implements Snapshots.
func (s *Memory) List(_ context.Context, stack string) ([]*Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Manifest
	for id, e := range s.snaps {
		m, err := decode(id, e.data, e.rev)
		if err != nil {
			m = &Manifest{ID: id, State: StateCorrupt, Reason: err.Error(), Revision: e.rev}
		}
		if stack == "" || m.Stack == stack || m.State == StateCorrupt {
			out = append(out, m)
		}
	}
	sortManifests(out)
	return out, nil
}

// Headers implements Snapshots.
func (s *Memory) Headers(ctx context.Context, stack string) ([]*Manifest, error) {
	ms, err := s.List(ctx, stack)
	for i, m := range ms {
		if m.State != StateCorrupt {
			ms[i] = HeaderOf(m)
		}
	}
	return ms, err
}

// Delete implements Snapshots.
func (s *Memory) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.snaps[id]; !ok {
		return fmt.Errorf("snapshot %s: %w", id, ErrNotFound)
	}
	delete(s.snaps, id)
	return nil
}

// NextEpoch implements Snapshots.
func (s *Memory) NextEpoch(_ context.Context, stack string, atLeast uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := max(s.epochs[stack]+1, atLeast)
	s.epochs[stack] = e
	return e, nil
}

type memLock struct {
	s     *Memory
	stack string
	owner string
	lost  chan struct{}
	once  sync.Once
}

func (l *memLock) Stack() string         { return l.stack }
func (l *memLock) Lost() <-chan struct{} { return l.lost }
func (l *memLock) Unlock(context.Context) error {
	l.s.mu.Lock()
	if l.s.locks[l.stack] == l {
		delete(l.s.locks, l.stack)
	}
	l.s.mu.Unlock()
	return nil
}

// LockStack implements Locker.
func (s *Memory) LockStack(_ context.Context, stack, owner string, _ time.Duration) (Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[stack]; ok {
		return nil, fmt.Errorf("stack %s is locked by %s: %w (wait for it to finish or abort it)", stack, l.owner, ErrLocked)
	}
	l := &memLock{s: s, stack: stack, owner: owner, lost: make(chan struct{})}
	s.locks[stack] = l
	return l, nil
}

// BreakLock implements Locker.
func (s *Memory) BreakLock(_ context.Context, stack, owner string) error {
	s.mu.Lock()
	l := s.locks[stack]
	if l == nil || l.owner != owner {
		s.mu.Unlock()
		return nil
	}
	delete(s.locks, stack)
	s.mu.Unlock()
	l.once.Do(func() { close(l.lost) })
	return nil
}

// ExpireLock makes the stack's lock lapse as if its holder died.
func (s *Memory) ExpireLock(stack string) {
	s.mu.Lock()
	l := s.locks[stack]
	delete(s.locks, stack)
	s.mu.Unlock()
	if l != nil {
		l.once.Do(func() { close(l.lost) })
	}
}

// RegisterWorker implements Workers.
func (s *Memory) RegisterWorker(_ context.Context, w Worker, _ time.Duration) (func(context.Context) error, error) {
	if w.Node == "" {
		return nil, fmt.Errorf("store: register worker: empty node name")
	}
	s.mu.Lock()
	s.workers[w.Node] = w
	s.mu.Unlock()
	return func(context.Context) error {
		s.mu.Lock()
		delete(s.workers, w.Node)
		s.mu.Unlock()
		return nil
	}, nil
}

// ListWorkers implements Workers.
func (s *Memory) ListWorkers(context.Context) ([]Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Worker, 0, len(s.workers))
	for _, w := range s.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Close implements Store.
func (s *Memory) Close() error { return nil }

func encode(m *Manifest) ([]byte, error) {
	if m.ID == "" {
		return nil, fmt.Errorf("store: manifest without id")
	}
	if m.headerOnly {
		return nil, fmt.Errorf("snapshot %s: %w", m.ID, ErrHeaderOnly)
	}
	m.Summarize()
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("store: encode snapshot %s: %w", m.ID, err)
	}
	return b, nil
}

func decode(id string, b []byte, rev int64) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %v (remove it with 'swarmckpt rm %s')", id, ErrCorrupt, err, id)
	}
	if m.ID != id {
		return nil, fmt.Errorf("snapshot %s: %w: manifest names id %q (remove it with 'swarmckpt rm %s')", id, ErrCorrupt, m.ID, id)
	}
	m.Revision = rev
	return &m, nil
}

// Encode and Decode are the manifest codec shared by Store implementations.
func Encode(m *Manifest) ([]byte, error) { return encode(m) }

// Decode decodes a stored manifest of id at revision rev.
func Decode(id string, b []byte, rev int64) (*Manifest, error) { return decode(id, b, rev) }

func sortManifests(ms []*Manifest) {
	sort.Slice(ms, func(i, j int) bool {
		if !ms[i].CreatedAt.Equal(ms[j].CreatedAt) {
			return ms[i].CreatedAt.Before(ms[j].CreatedAt)
		}
		return ms[i].ID < ms[j].ID
	})
}

// SortManifests sorts oldest first (ties by id).
func SortManifests(ms []*Manifest) { sortManifests(ms) }

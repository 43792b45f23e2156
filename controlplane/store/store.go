package store

import (
	"context"
	"errors"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Sentinel errors, wrapped with the object they concern.
var (
	ErrNotFound   = errors.New("store: not found")
	ErrExists     = errors.New("store: already exists")
	ErrConflict   = errors.New("store: changed concurrently")
	ErrFinal      = errors.New("store: snapshot already committed or aborted")
	ErrIncomplete = errors.New("store: snapshot not complete")
	ErrLocked     = errors.New("store: stack already being snapshotted")
	ErrLockLost   = errors.New("store: stack lock lost")
	ErrCorrupt    = errors.New("store: stored manifest does not decode")
	// ErrHeaderOnly: Update or Commit of a manifest read by Headers.
	ErrHeaderOnly = errors.New("store: manifest read without its containers (Headers): read it with Get to change it")
)

// Snapshots stores snapshot manifests.
type Snapshots interface {
	// Create stores a new manifest; ErrExists if the id is taken. Sets m.Revision
	// (Create, Update and Commit also set m.NContainers and m.ImageBytes).
	Create(ctx context.Context, m *Manifest) error
	// Get returns a manifest; ErrNotFound, or ErrCorrupt if it does not decode.
	Get(ctx context.Context, id string) (*Manifest, error)
	// Update replaces a manifest if its stored revision is m.Revision (ErrConflict
	// otherwise). The state of a final (committed, aborted) manifest cannot change
	// (ErrFinal); its other fields (restores, verdict) can. Sets m.Revision.
	Update(ctx context.Context, m *Manifest) error
	// Commit sets m's state to committed in one transaction, only if m.Complete(),
	// the stored revision is m.Revision and lock is still held.
	Commit(ctx context.Context, m *Manifest, lock Lock) error
	// List returns the manifests of a stack ("" for all), oldest first. Manifests
	// that fail to decode are returned with State StateCorrupt.
	List(ctx context.Context, stack string) ([]*Manifest, error)
	// Headers is List without reading any container record: the manifests have no
	// Containers and no Record (HeaderOnly; NContainers and ImageBytes say what
	// they hold). Update and Commit refuse them (ErrHeaderOnly): Get to change one.
	Headers(ctx context.Context, stack string) ([]*Manifest, error)
	// Delete removes a manifest; ErrNotFound if absent.
	Delete(ctx context.Context, id string) error
	// NextEpoch hands out the epoch of a new snapshot of stack: greater than every
	// epoch it handed out for stack before (also of deleted snapshots: participants
	// ignore epochs older than the last they saw) and at least atLeast.
	NextEpoch(ctx context.Context, stack string, atLeast uint64) (uint64, error)
}

// Lock is a held stack lock.
type Lock interface {
	Stack() string
	// Lost is closed when the lock is lost (lease expired, store unreachable).
	Lost() <-chan struct{}
	// Unlock releases the lock.
	Unlock(ctx context.Context) error
}

// Locker hands out per-stack locks with a lease: a holder that dies loses the lock
// after ttl.
type Locker interface {
	// LockStack takes the stack's lock for owner; ErrLocked (naming the holder) if
	// someone else holds it.
	LockStack(ctx context.Context, stack, owner string, ttl time.Duration) (Lock, error)
	// BreakLock removes the stack's lock if owner holds it (a dead holder's lock, once
	// its snapshot was aborted by a recovering coordinator). Not held by owner: no-op.
	BreakLock(ctx context.Context, stack, owner string) error
	// LockHolder returns the owner of the stack's lock, "" when nobody holds it.
	LockHolder(ctx context.Context, stack string) (string, error)
	// ListLocks returns the held stack locks sorted by stack (swarmckpt status).
	ListLocks(ctx context.Context) ([]LockInfo, error)
}

// Worker is a worker's registration: the description its agent's heartbeats carry
// (the wire contract's type).
type Worker = node.Worker

// Workers keeps lease-bound worker registrations.
type Workers interface {
	// RegisterWorker stores w until release is called or the caller dies (ttl).
	RegisterWorker(ctx context.Context, w Worker, ttl time.Duration) (release func(context.Context) error, err error)
	// ListWorkers returns the registered workers sorted by node.
	ListWorkers(ctx context.Context) ([]Worker, error)
}

// Store is everything the coordinator keeps durably.
type Store interface {
	Snapshots
	Locker
	Workers
	Policies
	Operations
	Translations
	Close() error
}

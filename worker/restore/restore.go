package restore

import (
	"context"
	"errors"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Sentinel errors.
var (
	// ErrNoImage: the container's image is not present on the target node.
	ErrNoImage = errors.New("restore: image not on this node")
	// ErrIPTaken: another container already holds the address on that network.
	ErrIPTaken = errors.New("restore: address already in use")
	// ErrUnverified: the set was not verified (zero imageset.Verified).
	ErrUnverified = errors.New("restore: image set not verified")
	// ErrRestore: the runtime failed to restore the processes (CRIU's reason attached).
	ErrRestore = errors.New("restore: runtime could not restore the container")
	// ErrNameTaken: a container of that name exists on the node.
	ErrNameTaken = errors.New("restore: container name in use")
)

// Options tune a restore.
type Options struct {
	// Name of the new container; empty means the original name.
	Name string
	// Runtime is the Docker runtime to create the container with; empty means the
	// node's default (which is swarmckpt-runtime on lab nodes).
	Runtime string
	// Aliases are extra DNS aliases per network name, added to the recorded ones (swarm
	// gives a task aliases, such as the compose service's short name, that its container
	// does not show).
	Aliases map[string][]string
	// NetworkLock asks the runtime to lock the container's network (every packet but
	// loopback dropped, nftables table netlock.Table in its namespace) before CRIU
	// restores its sockets, and to leave it locked: the caller unlocks it once every
	// peer is restored (netlock.Locker.Unlock).
	NetworkLock bool
	// Created, when set, is called with each container created for the restore, before
	// the runtime can run (e.g. to journal the lock for the watchdog). An error aborts.
	Created func(c container.Ref) error
	// Keep restores from a hard-linked copy of the set (same file system: no data
	// copied) and leaves the set where it is, verified and restorable again: for a set
	// that is its snapshot's own copy on this node (a restore in place, a migration's
	// container that stays). Without it the restore consumes the set.
	Keep bool
}

// Restorer restores image sets on one node.
type Restorer interface {
	// Restore recreates and restores the container of set v. On success the set has
	// been consumed (moved to the restored area) unless opts.Keep; on failure it is
	// back at v.Dir() (with Keep it never left).
	Restore(ctx context.Context, v imageset.Verified, opts Options) (container.Ref, error)
	// Remove force-removes a container (by id or name), as a restore that has to be
	// undone needs; removing one that is not there succeeds.
	Remove(ctx context.Context, container string) error
}

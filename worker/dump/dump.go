package dump

import (
	"context"
	"errors"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Sentinel errors.
var (
	// ErrCRIU: runc/CRIU refused or failed the checkpoint; the error carries the log tail.
	ErrCRIU = errors.New("dump: checkpoint failed")
	// ErrExists: the target set directory already exists.
	ErrExists = errors.New("dump: image set directory already exists")
)

// Options select how a container is dumped.
type Options struct {
	// LeaveRunning keeps the container running after the dump (a snapshot); otherwise
	// its processes exit once dumped (a migration).
	LeaveRunning bool
	// Node names the source node in the manifest.
	Node string
}

// Dumper checkpoints containers.
type Dumper interface {
	// Dump checkpoints c into the new directory set (which must not exist) and returns
	// its sealed manifest. spec is recorded in the manifest to recreate c elsewhere.
	Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts Options) (*imageset.Manifest, error)
}

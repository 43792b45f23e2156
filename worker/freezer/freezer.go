package freezer

import (
	"context"
	"errors"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// ErrNoCgroup: the container's freezer cgroup cannot be found (it exited?).
var ErrNoCgroup = errors.New("freezer: container cgroup not found")

// Freezer freezes and thaws containers.
type Freezer interface {
	// Freeze stops every process of c and returns when all are stopped.
	Freeze(ctx context.Context, c container.Ref) error
	// Thaw resumes c; thawing a running container is not an error.
	Thaw(ctx context.Context, c container.Ref) error
	// Frozen reports whether c is frozen.
	Frozen(ctx context.Context, c container.Ref) (bool, error)
}

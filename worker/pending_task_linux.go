package worker

import (
	"context"
	"errors"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/pendingconn"
)

// Pending connects of restored swarm tasks. A task restored network-locked (every
// swarm-mode restore of the coordinator) is marked restored when it claims its
// placement (watchTask), so the coordinator's Unlock ends the connects pending then,
// as for an exact restore. A task restored without our lock (PlaceTask without
// LockUntil) had its SYN_SENT sockets' SYNs dropped by CRIU's own restore lock: those
// are ended as soon as the task runs.

// endPendingOfTask waits (until ctx ends) for the task container id to run and ends
// the connects its images held pending (ps, read from the set before it was placed).
func (w *Worker) endPendingOfTask(ctx context.Context, id string, ps []pendingconn.Ports) {
	if len(ps) == 0 || !w.p.EndPendingConnects {
		return
	}
	for {
		ref, err := w.p.Inspector.Resolve(ctx, id)
		if err == nil && ref.Pid > 0 {
			w.failPendingNow(ctx, ref, ps)
			return
		}
		if errors.Is(err, container.ErrNotFound) {
			return // the create failed: nothing was restored
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

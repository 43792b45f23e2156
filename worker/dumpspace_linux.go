package worker

import (
	"context"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/space"
)

var _ SpaceChecker = (*Worker)(nil)

// CheckSpace implements SpaceChecker: the memory in use of each container (Parts.Memory;
// unknown: the margin only, logged) against the free space of the sets directory's
// file system (space.Free), decided by space.Check. Nothing is held.
func (w *Worker) CheckSpace(ctx context.Context, dumps []SpaceDump) error {
	if len(dumps) == 0 {
		return nil
	}
	est := make([]space.Dump, 0, len(dumps))
	for _, d := range dumps {
		c, err := w.resolve(ctx, d.Container)
		if err != nil {
			return err
		}
		mem := int64(-1)
		if w.p.Memory != nil {
			if mem, err = w.p.Memory(c.Pid); err != nil {
				w.log.Warn("cannot read a container's memory usage: its dump's disk space is estimated by the margin only", "container", c.String(), "err", err)
				mem = -1
			}
		}
		est = append(est, space.Dump{Label: d.label(), Memory: mem})
	}
	disk, err := space.Free(w.SetsDir())
	if err != nil {
		w.log.Warn("cannot read the free space of the sets directory: the dumps' disk space is not checked", "dir", w.SetsDir(), "err", err)
		return nil
	}
	err = space.Check(w.cfg.Node, disk, est)
	w.log.Info("disk space for dumps checked", "dumps", len(est), "need", space.Need(est), "free", disk.Free, "dir", disk.Dir, "mount", disk.Mount, "fits", err == nil)
	return err
}

func (w *Worker) dumpSpaceAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("POST /v1/space", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.CheckSpace(ctx, q.Space)
	})
}

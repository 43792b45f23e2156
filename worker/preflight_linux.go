package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// Preflight implements Restorer: each set's directory and files (presence and
// size; checksums are verified by Restore), then the Docker checks of the restorer
// (images, names, addresses) when it has them. A Prepare request only hands the
// restore's needs to the restorer's Prepare (network keepers), when it has one, and
// with Ready answers once they are ready (or ctx ended: an error); a Release request
// ends what Prepare started (the restorer's Unprepare).
func (w *Worker) Preflight(ctx context.Context, req PreflightRequest) (PreflightReport, error) {
	var rep PreflightReport
	if req.Release {
		type unpreparer interface {
			Unprepare(ctx context.Context, c restore.Check)
		}
		if u, ok := w.p.Restorer.(unpreparer); ok {
			u.Unprepare(ctx, req.Check)
		}
		return rep, nil
	}
	if req.Prepare {
		type preparer interface {
			Prepare(ctx context.Context, c restore.Check) (ready <-chan struct{})
		}
		if p, ok := w.p.Restorer.(preparer); ok {
			ready := p.Prepare(ctx, req.Check)
			if req.Ready {
				select {
				case <-ready:
				case <-ctx.Done():
					return rep, fmt.Errorf("worker %s: prepare: the network keepers were not ready in time (%w): they go on starting; the restore waits for them", w.cfg.Node, ctx.Err())
				}
			}
		}
		return rep, nil
	}
	for _, s := range req.Sets {
		dir, err := w.setPath(s.Set)
		if err != nil {
			return rep, err
		}
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			rep.Missing = append(rep.Missing, s.Set)
			continue
		}
	files:
		for _, f := range s.Files {
			fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Name)))
			switch {
			case err != nil:
				rep.Problems = append(rep.Problems, fmt.Sprintf("image set %s on node %s: file %s: %v: the set is incomplete; take a new snapshot",
					s.Set, w.cfg.Node, f.Name, err))
			case fi.Size() != f.Size:
				rep.Problems = append(rep.Problems, fmt.Sprintf("image set %s on node %s: file %s has %d bytes, the snapshot recorded %d: the set was changed; take a new snapshot",
					s.Set, w.cfg.Node, f.Name, fi.Size(), f.Size))
			default:
				continue
			}
			break files // one problem per set is enough
		}
		if s.Target != "" {
			m, err := imageset.ReadManifest(dir)
			if err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("image set %s on node %s: %v: the set is damaged; take a new snapshot", s.Set, w.cfg.Node, err))
				continue
			}
			rep.Problems = append(rep.Problems, localVolumeProblems(m, s.Key, s.Target)...)
		}
	}
	type checker interface {
		Check(ctx context.Context, node string, c restore.Check) ([]string, error)
	}
	if c, ok := w.p.Restorer.(checker); ok {
		p, err := c.Check(ctx, w.cfg.Node, req.Check)
		if err != nil {
			return rep, fmt.Errorf("worker %s: preflight: %w", w.cfg.Node, err)
		}
		rep.Problems = append(rep.Problems, p...)
	}
	return rep, nil
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
)

var _ PreCopier = (*Worker)(nil)

// PreCopy implements PreCopier: the pre-dumps go to <sets>/.precopy-<set ID>/images/pre/K
// (imageset.PreDumpPath), CRIU's work files beside them, while the container runs
// (not locked, not frozen: the snapshot that follows locks and freezes it for its
// final dump).
func (w *Worker) PreCopy(ctx context.Context, name, setID string) (PreCopyReport, error) {
	if err := migrate.PreCopySupport(ctx, w.p.Features); err != nil {
		return PreCopyReport{}, fmt.Errorf("worker %s: pre-copy of %s: %w: %w", w.cfg.Node, name, node.ErrNoSoftDirty, err)
	}
	pd, ok := w.p.Dumper.(dump.PreDumper)
	if !ok {
		return PreCopyReport{}, fmt.Errorf("worker %s: pre-copy of %s: %w: this worker's dumper cannot pre-dump", w.cfg.Node, name, node.ErrNoSoftDirty)
	}
	if _, err := w.setPath(setID); err != nil {
		return PreCopyReport{}, err
	}
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return PreCopyReport{}, err
	}
	dir := preCopyDir(w.SetsDir(), setID)
	images, work := imageset.ImagesPath(dir), filepath.Join(dir, dump.WorkDir)
	if err := os.RemoveAll(dir); err != nil { // an earlier PreCopy's: replaced
		return PreCopyReport{}, fmt.Errorf("worker %s: pre-copy of %s: %w", w.cfg.Node, name, err)
	}
	for _, d := range []string{images, work} {
		if err := os.MkdirAll(d, imageset.DirMode); err != nil {
			return PreCopyReport{}, fmt.Errorf("worker %s: pre-copy of %s: %w (is the disk full or read-only?)", w.cfg.Node, name, err)
		}
	}
	t0 := time.Now()
	rounds, why, err := migrate.RunPreCopy(ctx, w.cfg.PreCopy, func(ctx context.Context, k int) (int64, error) {
		n, err := pd.PreDump(ctx, c, images, work, k)
		if err == nil {
			w.log.Info("pre-dump written", "container", name, "set", setID, "round", k, "bytes", n)
		}
		return n, err
	}, time.Now)
	if err != nil {
		return PreCopyReport{}, errors.Join(fmt.Errorf("worker %s: pre-copy of %s: %w (the container runs on as before)", w.cfg.Node, name, err), os.RemoveAll(dir))
	}
	rep := PreCopyReport{Rounds: rounds, Why: why}
	w.log.Info("pre-copy done: the final dump writes only what was dirtied since", "container", name, "set", setID,
		"rounds", len(rounds), "bytes", rep.Bytes(), "seconds", time.Since(t0).Seconds(), "why", why)
	return rep, nil
}

// preDumpsKept counts the pre-dumps PreCopy kept for set id (pre/0, pre/1, ... in
// order): 0 when none.
func (w *Worker) preDumpsKept(id string) (dir string, n int) {
	dir = preCopyDir(w.SetsDir(), id)
	for {
		if _, err := os.Stat(filepath.Join(imageset.ImagesPath(dir), imageset.PreDumpsDir, strconv.Itoa(n))); err != nil {
			return dir, n
		}
		n++
	}
}

// withPreDumps sets opts to take the pre-dumps kept for set id (DumpOptions.PreCopied).
func (w *Worker) withPreDumps(id string, opts *dump.Options) error {
	dir, n := w.preDumpsKept(id)
	if n == 0 {
		return errNoPreDumps(w.cfg.Node, id)
	}
	opts.PreCopied, opts.PreDumps = dir, n
	return nil
}

// dropPreDumps removes what PreCopy kept for set id (its dump took the pre-dumps, or
// the set is dropped).
func (w *Worker) dropPreDumps(id string) error {
	return os.RemoveAll(preCopyDir(w.SetsDir(), id))
}

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
func (w *Worker) PreCopy(ctx context.Context, name, setID, to string) (PreCopyReport, error) {
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
	if to != "" {
		tSend := time.Now()
		if err := w.sendPreDumps(ctx, setID, len(rounds), to); err != nil {
			// Not fatal: the pre-dumps stream with the set instead.
			rep.SendError = err.Error()
			w.log.Warn("cannot send the pre-dumps ahead of the dump; they will stream with the set", "container", name, "set", setID, "to", to, "err", err)
		} else {
			rep.SentTo = to
			w.log.Info("pre-dumps sent ahead of the dump", "container", name, "set", setID, "to", to, "seconds", time.Since(tSend).Seconds())
		}
	}
	w.log.Info("pre-copy done: the final dump writes only what was dirtied since", "container", name, "set", setID,
		"rounds", len(rounds), "bytes", rep.Bytes(), "seconds", time.Since(t0).Seconds(), "why", why, "sent_to", rep.SentTo)
	return rep, nil
}

// sentToFile, in a set's pre-dumps directory, names the worker they were sent to.
const sentToFile = "sent-to"

// sendPreDumps sends the n pre-dumps kept for set id to the worker at to, as a set of
// their own (.precopy-<id>, sealed here: regular files only, the links between them
// made again afterwards for the final dump), and records where they went.
func (w *Worker) sendPreDumps(ctx context.Context, id string, n int, to string) error {
	dir := preCopyDir(w.SetsDir(), id)
	images := imageset.ImagesPath(dir)
	if err := imageset.UnlinkParents(images, n); err != nil {
		return err
	}
	err := imageset.Seal(dir, &imageset.Manifest{Node: w.cfg.Node, PreDumps: n})
	if err == nil {
		_, err = w.Send(ctx, preCopyPrefix+id, to)
	}
	// The chain again, for the final dump's --parent-path (without the final link).
	lerr := imageset.LinkParents(images, n)
	if lerr == nil {
		lerr = os.Remove(filepath.Join(images, imageset.ParentLink))
	}
	if err = errors.Join(err, lerr); err != nil {
		_ = os.Remove(filepath.Join(dir, imageset.ManifestName))
		return err
	}
	return os.WriteFile(filepath.Join(dir, sentToFile), []byte(to), imageset.FileMode)
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

// withPreDumps sets opts to take the pre-dumps kept for set id (DumpOptions.PreCopied),
// with their digests when they were sent ahead, and whether they were sent to the
// worker the dump streams to (streamTo).
func (w *Worker) withPreDumps(id, streamTo string, opts *dump.Options) error {
	dir, n := w.preDumpsKept(id)
	if n == 0 {
		return errNoPreDumps(w.cfg.Node, id)
	}
	opts.PreCopied, opts.PreDumps = dir, n
	if m, err := imageset.ReadManifest(dir); err == nil {
		opts.PreKnown = map[string]imageset.File{}
		for _, f := range m.Files {
			opts.PreKnown[f.Name] = f
		}
		sent, _ := os.ReadFile(filepath.Join(dir, sentToFile))
		opts.PreSent = streamTo != "" && string(sent) == streamTo
	}
	return nil
}

// preSent is the set of pre-dumps sent ahead to this worker for set id
// (.precopy-<id>), re-checked (Recheck: stat only when this worker received it),
// for the set's live stream to adopt; zero when there is none or it does not check.
func (w *Worker) preSent(id string) imageset.Verified {
	dir := preCopyDir(w.SetsDir(), id)
	if _, err := os.Stat(filepath.Join(dir, imageset.ManifestName)); err != nil {
		return imageset.Verified{}
	}
	w.recvMu.Lock()
	cached, ok := w.verified[preCopyPrefix+id]
	w.recvMu.Unlock()
	var v imageset.Verified
	var err error
	if ok && cached.Dir() == dir {
		v, err = imageset.Recheck(cached)
	} else {
		v, err = imageset.Check(dir)
	}
	if err != nil {
		w.log.Warn("the pre-dumps sent ahead for a set do not check; the set's stream must carry them", "set", id, "err", err)
		return imageset.Verified{}
	}
	return v
}

// dropPreDumps removes what PreCopy kept for set id (its dump took the pre-dumps, or
// the set is dropped).
func (w *Worker) dropPreDumps(id string) error {
	w.recvMu.Lock()
	delete(w.verified, preCopyPrefix+id)
	w.recvMu.Unlock()
	return os.RemoveAll(preCopyDir(w.SetsDir(), id))
}

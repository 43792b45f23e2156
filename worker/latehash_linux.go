package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Page digests after the restore (Config.PageDigests = after-restore).
//
// A direct transfer's pages arrive through CRIU's page server, whose protocol has no
// checksum: their sha256 only records what arrived, so that a later restore from the
// set, or a verify, checks it like any other set. Computing it while the page server
// writes put a pass over every page on the migration's critical path. Instead the
// receiver lists the page files with their sizes only and marks the manifest
// PagesUnhashed; the set is then:
//
//	received   this process holds it as received (the stamps of its files as they
//	           arrived, w.verified): the one restore that follows the transfer uses it
//	           (imageset.Recheck: a stat per file), nothing else does
//	hashing    after that restore (or lateHashDelay after the transfer if none came),
//	           a goroutine on a thread of the lowest CPU priority hashes the page files
//	           and rewrites the manifest with their digests, atomically (HashLate)
//	verified   from then on like any set hashed on this node
//
// Until verified, every other reader (a second restore, a placement, Sockets, Send)
// waits for the hash (starting it at once), and a set whose worker ended before the
// hash finished stays marked on disk: Verify refuses it (imageset.ErrUnhashed).

// lateHashDelay is how long a received set waits for its restore before its pages are
// hashed anyway.
const lateHashDelay = 30 * time.Second

// lateHash is the pending hash of one received set.
type lateHash struct {
	v      imageset.Verified // as received, with the stamps of its files then
	start  chan struct{}     // closed: hash now
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{} // closed when err is set
	err    error
}

func (h *lateHash) now() { h.once.Do(func() { close(h.start) }) }

// scheduleHash starts the pending hash of set id, received as v with PagesUnhashed.
func (w *Worker) scheduleHash(id string, v imageset.Verified) {
	ctx, cancel := context.WithCancel(w.bg)
	h := &lateHash{v: v, start: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	w.recvMu.Lock()
	if w.hashes == nil {
		w.hashes = map[string]*lateHash{}
	}
	w.hashes[id] = h
	w.recvMu.Unlock()
	go func() {
		defer cancel()
		t := time.NewTimer(lateHashDelay)
		defer t.Stop()
		select {
		case <-h.start:
		case <-t.C:
		case <-ctx.Done():
		}
		start := time.Now()
		h.err = ctx.Err()
		var hv imageset.Verified
		if _, err := os.Stat(v.Dir()); h.err == nil && errors.Is(err, os.ErrNotExist) {
			// Its restore consumed it (no Keep) or it was dropped: nothing to record.
			w.recvMu.Lock()
			if w.hashes[id] == h {
				delete(w.hashes, id)
			}
			w.recvMu.Unlock()
			close(h.done)
			w.log.Debug("received set consumed before its pages were hashed; nothing to hash", "set", id)
			return
		}
		if h.err == nil {
			hv, h.err = hashIdle(ctx, v)
		}
		w.recvMu.Lock()
		if w.hashes[id] == h {
			delete(w.hashes, id)
		}
		if h.err == nil {
			if c, ok := w.verified[id]; ok && c.Dir() == hv.Dir() {
				w.verified[id] = hv // not restored yet: later restores recheck the hashed set
			}
		}
		w.recvMu.Unlock()
		close(h.done)
		if errors.Is(h.err, context.Canceled) {
			w.log.Info("the received pages were not hashed (the worker is closing, or the set was dropped): the set stays unverified", "set", id)
			return
		}
		if h.err != nil {
			w.log.Warn("the received pages could not be hashed: the set stays unverified (a restore from it is refused)", "set", id, "err", h.err)
			return
		}
		w.log.Info("received pages hashed after the restore; the set is verified", "set", id,
			"bytes", hv.Manifest().TotalBytes(), "seconds", time.Since(start).Seconds())
	}()
}

// hashIdle runs imageset.HashLate on a thread of its own with the lowest CPU priority
// (nice 19), so that the restored container and the node's other work come first.
func hashIdle(ctx context.Context, v imageset.Verified) (imageset.Verified, error) {
	type result struct {
		v   imageset.Verified
		err error
	}
	out := make(chan result, 1)
	go func() {
		// The thread is not unlocked: it ends with this goroutine, its priority with it.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
		hv, err := imageset.HashLate(ctx, v)
		out <- result{hv, err}
	}()
	r := <-out
	return r.v, r.err
}

// hashAfterRestore starts the pending hash of set id, if any, now that its restore ran.
func (w *Worker) hashAfterRestore(id string) {
	w.recvMu.Lock()
	h := w.hashes[id]
	w.recvMu.Unlock()
	if h != nil {
		h.now()
	}
}

// awaitHash waits until the pending hash of set id, if any, ended (starting it at
// once): every use of a set but its first restore needs its digests.
func (w *Worker) awaitHash(ctx context.Context, id string) error {
	w.recvMu.Lock()
	h := w.hashes[id]
	w.recvMu.Unlock()
	if h == nil {
		return nil
	}
	h.now()
	w.log.Info("waiting for the received pages' hash before using the set", "set", id)
	select {
	case <-h.done:
	case <-ctx.Done():
		return fmt.Errorf("worker %s: set %s: waiting for its received pages to be hashed: %w", w.cfg.Node, id, ctx.Err())
	}
	if h.err != nil && !errors.Is(h.err, context.Canceled) {
		return fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, id, h.err)
	}
	return nil
}

// stopHash ends the pending hash of set id, if any, and waits for it (DropSet: the
// hash must not write into a directory being removed).
func (w *Worker) stopHash(id string) {
	w.recvMu.Lock()
	h := w.hashes[id]
	w.recvMu.Unlock()
	if h != nil {
		h.cancel()
		<-h.done
	}
}

var _ DigestWaiter = (*Worker)(nil)

// SetDigests implements DigestWaiter: AwaitDigests, then the set's manifest as on
// disk (not re-hashed: its digests are the ones this worker computed). A set still
// marked PagesUnhashed then (its hash failed, or a previous worker left it and it
// could not be resumed) is ErrUnhashed.
func (w *Worker) SetDigests(ctx context.Context, setID string) (*imageset.Manifest, error) {
	set, err := w.setPath(setID)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(set); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoSet)
	}
	if err := w.awaitHash(ctx, setID); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUnhashed, err)
	}
	m, err := imageset.ReadManifest(set)
	if err != nil {
		return nil, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, err)
	}
	if m.PagesUnhashed {
		return nil, fmt.Errorf("worker %s: set %s: %w (%w)", w.cfg.Node, setID, ErrUnhashed, imageset.ErrUnhashed)
	}
	return m, nil
}

// resumeHashes schedules, when the worker starts, the hash of every set whose pages
// a previous worker process received and left unhashed (it ended first): from the
// stamps the files had when they arrived (imageset.ResumeLate), at once and at nice
// 19. A set that cannot be resumed keeps its mark: refused, and reported so by
// SetDigests.
func (w *Worker) resumeHashes() {
	dirs, _ := filepath.Glob(filepath.Join(w.SetsDir(), "*", imageset.ManifestName))
	for _, mf := range dirs {
		dir := filepath.Dir(mf)
		id := filepath.Base(dir)
		if strings.HasPrefix(id, ".") {
			continue
		}
		m, err := imageset.ReadManifest(dir)
		if err != nil || !m.PagesUnhashed {
			continue
		}
		v, err := imageset.ResumeLate(dir)
		if err != nil {
			w.log.Warn("a set's received pages were left unhashed by a previous worker and cannot be hashed now: the set stays unverified (a restore from it is refused)", "set", id, "err", err)
			continue
		}
		w.log.Info("resuming the hash of a set's received pages that a previous worker left unhashed", "set", id)
		w.scheduleHash(id, v)
		w.hashAfterRestore(id) // at once: no restore of this process is waiting for it
	}
}

// AwaitDigests waits until the pages of set setID that this worker received from a
// direct transfer are hashed and recorded in its manifest, starting that hash now if
// it still waits for the set's restore. A set with no pending hash returns at once
// (whether it is verified is then up to its manifest: imageset.Verify).
func (w *Worker) AwaitDigests(ctx context.Context, setID string) error {
	if _, err := w.setPath(setID); err != nil {
		return err
	}
	return w.awaitHash(ctx, setID)
}

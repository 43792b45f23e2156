package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// xlates are the translations a Worker keeps (Translations), recorded in
// <data-root>/swarmckpt/xlate.json so that a worker that restarts goes on polling
// them, and the poll that removes them.
type xlates struct {
	mu     sync.Mutex
	kept   map[string]Translation // container ID + " " + old -> translation
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *Worker) xlateFile() string { return filepath.Join(w.cfg.DataRoot, "swarmckpt", "xlate.json") }

// start loads the record and starts the poll.
func (x *xlates) start(w *Worker) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.kept = map[string]Translation{}
	if b, err := os.ReadFile(w.xlateFile()); err == nil {
		var ts []Translation
		if err := json.Unmarshal(b, &ts); err != nil {
			w.log.Warn("unreadable record of address translations: ignored (their rules stay until their containers end)", "file", w.xlateFile(), "err", err)
		}
		for _, t := range ts {
			x.kept[xlateKey(t.ContainerID, t.Old)] = t
		}
	}
	if w.p.Xlate == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel, x.done = cancel, make(chan struct{})
	go func() {
		defer close(x.done)
		t := time.NewTicker(w.cfg.XlatePoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.sweepXlates(ctx)
			}
		}
	}()
}

func (x *xlates) stop() {
	x.mu.Lock()
	cancel, done := x.cancel, x.done
	x.cancel = nil
	x.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// saveXlates writes the record (w.xl.mu held).
func (w *Worker) saveXlates() error {
	ts := w.listXlates()
	b, _ := json.Marshal(ts)
	f := w.xlateFile()
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return err
	}
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f)
}

// listXlates returns the kept translations, sorted (x.mu held).
func (w *Worker) listXlates() []Translation {
	out := make([]Translation, 0, len(w.xl.kept))
	for _, t := range w.xl.kept {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Translation) int {
		if c := strings.Compare(a.ContainerID, b.ContainerID); c != 0 {
			return c
		}
		return a.Old.Compare(b.Old)
	})
	return out
}

// Translate implements Translations.
func (w *Worker) Translate(ctx context.Context, name string, old, new netip.Addr) error {
	if w.p.Xlate == nil {
		return fmt.Errorf("worker %s: no address translator: %w", w.cfg.Node, node.ErrFailedPrecondition)
	}
	old, new = old.Unmap(), new.Unmap()
	if err := xlate.Check(old, new); err != nil {
		return node.Mark(fmt.Errorf("worker %s: translate in %s: %w", w.cfg.Node, name, err), node.ErrInvalidArgument)
	}
	ref, err := w.p.Inspector.Resolve(ctx, name)
	if err != nil {
		return node.Mark(fmt.Errorf("worker %s: translate %v -> %v: %w", w.cfg.Node, old, new, err), node.ErrNotFound)
	}
	w.xl.mu.Lock()
	defer w.xl.mu.Unlock()
	if err := w.p.Xlate.Add(ctx, ref, old, new); err != nil {
		if errors.Is(err, xlate.ErrBadRule) || errors.Is(err, xlate.ErrConflict) {
			err = node.Mark(err, node.ErrInvalidArgument)
		} else if errors.Is(err, xlate.ErrNamespace) {
			err = node.Mark(err, node.ErrNotFound)
		}
		return fmt.Errorf("worker %s: translate %v -> %v in %s: %w", w.cfg.Node, old, new, ref, err)
	}
	if w.xl.kept == nil {
		w.xl.kept = map[string]Translation{}
	}
	// What the namespace translates now: old -> new, or, for a peer that moved again,
	// the earlier translation re-pointed to new (xlate.Apply).
	var before []xlate.Rule
	for _, t := range w.xl.kept {
		if t.ContainerID == ref.ID {
			before = append(before, xlate.Rule{Old: t.Old, New: t.New})
		}
	}
	now, err := xlate.Apply(before, true, old, new)
	if err != nil { // the namespace took it: keep what was asked
		now = []xlate.Rule{{Old: old, New: new}}
	}
	w.xl.kept = keptAfter(w.xl.kept, ref.ID, ref.Name, now, time.Now())
	w.log.Info("address translated for a moved peer", "container", ref.Name, "old", old, "new", new, "translations", fmt.Sprint(now))
	if err := w.saveXlates(); err != nil {
		w.log.Warn("cannot record an address translation: a restarted worker would not remove it (it goes with the container)", "err", err)
	}
	return nil
}

// Translations implements Translations.
func (w *Worker) Translations(context.Context) ([]Translation, error) {
	w.xl.mu.Lock()
	defer w.xl.mu.Unlock()
	return w.listXlates(), nil
}

// sweepXlates removes every kept translation whose container ended or has no TCP
// socket to its old address any more. The lock is not held while a container is
// looked at: Docker answers nothing about a container whose stop the runtime wrapper
// holds (a drain), and Translate for the other containers must not wait for that;
// each look is bounded (xlateLook), a container that does not answer is looked at
// again at the next poll.
func (w *Worker) sweepXlates(ctx context.Context) {
	w.xl.mu.Lock()
	kept := make(map[string]Translation, len(w.xl.kept))
	for k, t := range w.xl.kept {
		kept[k] = t
	}
	w.xl.mu.Unlock()
	for k, t := range kept {
		if ctx.Err() != nil {
			return
		}
		gone, remove := w.sweepOne(ctx, t)
		if !gone && !remove {
			continue
		}
		w.xl.mu.Lock()
		if cur, ok := w.xl.kept[k]; ok && cur == t {
			if remove {
				if ref, err := w.p.Inspector.Resolve(ctx, t.ContainerID); err == nil {
					if err := w.p.Xlate.Remove(ctx, ref, t.Old); err != nil {
						if ctx.Err() == nil {
							w.log.Warn("cannot remove an address translation no connection uses; retrying", "container", t.Name, "old", t.Old, "err", err)
						}
						w.xl.mu.Unlock()
						continue
					}
				}
				w.log.Info("address translation removed: no connection uses the old address any more", "container", t.Name, "old", t.Old, "new", t.New,
					"kept_s", time.Since(t.Since).Seconds())
			} else {
				w.log.Info("address translation gone with its container", "container", t.Name, "old", t.Old, "new", t.New)
			}
			delete(w.xl.kept, k)
			if err := w.saveXlates(); err != nil {
				w.log.Warn("cannot record the address translations", "err", err)
			}
		}
		w.xl.mu.Unlock()
	}
}

// xlateLook bounds one look at a container by the translations' poll.
const xlateLook = 2 * time.Second

// sweepOne tells whether t's container ended (gone) or no TCP socket of it uses t.Old
// any more (remove); neither when it cannot tell now.
func (w *Worker) sweepOne(ctx context.Context, t Translation) (gone, remove bool) {
	lctx, cancel := context.WithTimeout(ctx, xlateLook)
	defer cancel()
	ref, err := w.p.Inspector.Resolve(lctx, t.ContainerID)
	if errors.Is(err, container.ErrNotFound) || errors.Is(err, container.ErrNotRunning) {
		return true, false
	}
	if err != nil {
		return false, false // Docker busy (or the container's stop held): next time
	}
	used, err := w.p.Xlate.InUse(lctx, ref, t.Old)
	if errors.Is(err, xlate.ErrNamespace) {
		return true, false
	}
	if err != nil || used {
		return false, false
	}
	return false, true
}

func (w *Worker) xlateAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("PUT /v1/xlate/{name}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.Translate(ctx, r.PathValue("name"), q.Xlate.Old, q.Xlate.New)
	})
	handle("GET /v1/xlate", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Translations(ctx)
	})
}

var _ Translations = (*Worker)(nil)

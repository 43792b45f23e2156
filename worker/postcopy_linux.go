package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// lazyServer finds the page server of a post-copy dump by its set (dump.Runc).
type lazyServer interface {
	LazyOf(set string) (dump.Lazy, bool)
}

// dumpLazyHeld is DumpWith with Lazy and LeaveRunning: a post-copy dump of a container
// its caller holds (a migration's parked container, frozen and network-locked by the
// node agent, worker/agent park.go). It takes no hold of its own: CRIU serves the
// pages on pageServer (port 0: a free one) and, after the last one, leaves the
// container as it found it, frozen; the caller ends it (or, if the restore failed,
// releases it: it runs on here). WaitLazy says when the last page was served. The
// set here holds every image but the pages, with the page server's address
// (Manifest.LazyPages); the restore side needs it.
func (w *Worker) dumpLazyHeld(ctx context.Context, name, setID, pageServer string) (*imageset.Manifest, error) {
	set, c, err := w.lazyDumpTarget(ctx, name, setID)
	if err != nil {
		return nil, err
	}
	if _, ok := w.p.Dumper.(lazyServer); !ok {
		return nil, fmt.Errorf("worker %s: dump %s: this node's dumper cannot serve pages (post-copy)", w.cfg.Node, name)
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	addr, err := freePort(pageServer)
	if err != nil {
		return nil, fmt.Errorf("worker %s: page server address %q: %w", w.cfg.Node, pageServer, err)
	}
	w.harden(ctx, c)
	unpipe, err := w.raisePipes()
	if err != nil {
		return nil, fmt.Errorf("worker %s: dump %s: post-copy: %w", w.cfg.Node, c, err)
	}
	m, err := w.p.Dumper.Dump(ctx, c, spec, set, dump.Options{Node: w.cfg.Node, PageServer: addr, LeaveRunning: true})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: %w (the container is left as its caller holds it)", w.cfg.Node, err), unpipe())
	}
	l, ok := w.p.Dumper.(lazyServer).LazyOf(set)
	if !ok {
		// The page server ended already (nothing to serve, or it failed at once).
		return m, unpipe()
	}
	w.lazyMu.Lock()
	if w.lazyServing == nil {
		w.lazyServing = map[string]bool{}
	}
	w.lazyServing[c.ID] = true
	w.lazyMu.Unlock()
	go func() {
		err := l.Wait()
		w.lazyMu.Lock()
		if w.lazyEnded == nil {
			w.lazyEnded = map[string]error{}
		}
		w.lazyEnded[setID] = err
		delete(w.lazyServing, c.ID)
		w.lazyMu.Unlock()
		if perr := unpipe(); perr != nil {
			w.log.Warn("post-copy done; could not put fs.pipe-max-size back", "container", c.Name, "err", perr)
		}
		if err != nil {
			w.log.Error("post-copy page server of a held container failed; it stays as its caller holds it", "container", c.Name, "set", setID, "err", err)
			return
		}
		w.log.Info("post-copy: every page served; the held container stays frozen for its caller to end", "container", c.Name, "set", setID)
	}()
	w.log.Info("held container dumped post-copy", "container", c.Name, "set", setID, "page_server", addr, "dump_seconds", m.DumpSeconds)
	return m, nil
}

// WaitLazy implements LazyWaiter: it waits until the page server of the held
// post-copy dump that produced setID ended, and returns its error: nil once every page
// was served (the restore side has them all). A set with no such dump here returns
// ErrNoLazy.
func (w *Worker) WaitLazy(ctx context.Context, setID string) error {
	set, err := w.setPath(setID)
	if err != nil {
		return err
	}
	ended := func() (error, bool) {
		w.lazyMu.Lock()
		defer w.lazyMu.Unlock()
		err, ok := w.lazyEnded[setID]
		return err, ok
	}
	var l dump.Lazy
	if ls, ok := w.p.Dumper.(lazyServer); ok {
		l, _ = ls.LazyOf(set)
	}
	if l == nil {
		if err, ok := ended(); ok {
			return lazyResult(w.cfg.Node, setID, err)
		}
		return fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoLazy)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait() }()
	select {
	case err := <-done:
		return lazyResult(w.cfg.Node, setID, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CancelLazy implements LazyWaiter: it stops the page server of the held post-copy
// dump that produced setID (the restore side, if any, fails; the held container stays
// as its caller holds it) and waits until it ended. nil when none runs here.
func (w *Worker) CancelLazy(ctx context.Context, setID string) error {
	set, err := w.setPath(setID)
	if err != nil {
		return err
	}
	ls, ok := w.p.Dumper.(lazyServer)
	if !ok {
		return nil
	}
	l, ok := ls.LazyOf(set)
	if !ok {
		return nil
	}
	l.Cancel()
	done := make(chan struct{})
	go func() { _ = l.Wait(); close(done) }()
	select {
	case <-done:
		w.log.Info("post-copy page server stopped: its migration was aborted", "set", setID)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worker %s: stop the page server of set %s: %w", w.cfg.Node, setID, ctx.Err())
	}
}

// DisconnectHeld implements LazyWaiter: it takes the held container name off every
// network it is on (forced, as `docker network disconnect -f`), so that its restore
// elsewhere can take its addresses; its page server runs in the worker's namespace
// and keeps serving. Held: its post-copy page server runs (CRIU keeps its tasks
// stopped; the cgroup's freezer need not say frozen meanwhile, seen on the lab), or
// it is frozen. Refused (ErrNotFrozen) otherwise: a running container would lose its
// connections.
func (w *Worker) DisconnectHeld(ctx context.Context, name string) error {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("worker %s: disconnect %s: %w", w.cfg.Node, name, err)
	}
	w.lazyMu.Lock()
	serving := w.lazyServing[c.ID]
	w.lazyMu.Unlock()
	frozen := serving
	if !serving {
		if frozen, err = w.p.Freezer.Frozen(ctx, c); err != nil {
			return fmt.Errorf("worker %s: disconnect %s: %w", w.cfg.Node, name, err)
		}
	}
	if !frozen {
		return fmt.Errorf("worker %s: disconnect %s: %w: only a held post-copy source is taken off its networks; it keeps them", w.cfg.Node, name, ErrNotFrozen)
	}
	if w.p.Networks == nil {
		return fmt.Errorf("worker %s: disconnect %s: this worker cannot change networks: %w", w.cfg.Node, name, node.ErrUnavailable)
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("worker %s: disconnect %s: %w", w.cfg.Node, name, err)
	}
	for _, n := range spec.Networks {
		if err := w.p.Networks.Disconnect(ctx, c.ID, n.Name); err != nil {
			return fmt.Errorf("worker %s: %w (it stays frozen and held)", w.cfg.Node, err)
		}
	}
	w.log.Info("held post-copy source taken off its networks", "container", c.Name, "networks", len(spec.Networks))
	return nil
}

// ReconnectHeld implements LazyWaiter: it puts container name back on every network
// of nets with its address and aliases there (a network it is on already is left as
// it is), as DisconnectHeld's undo: the rollback of a post-copy migration whose
// restore failed gives the source its addresses back before it is released. Not
// refused for a running container: connecting takes nothing from it.
func (w *Worker) ReconnectHeld(ctx context.Context, name string, nets []node.NetworkAttach) error {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return goneMarked(fmt.Errorf("worker %s: reconnect %s: %w", w.cfg.Node, name, err))
	}
	if w.p.Networks == nil {
		return fmt.Errorf("worker %s: reconnect %s: this worker cannot change networks: %w", w.cfg.Node, name, node.ErrUnavailable)
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("worker %s: reconnect %s: %w", w.cfg.Node, name, err)
	}
	on := map[string]bool{}
	for _, n := range spec.Networks {
		on[n.Name] = true
	}
	var errs []error
	done := 0
	for _, n := range nets {
		if on[n.Network] {
			continue
		}
		if err := w.p.Networks.Connect(ctx, c.ID, container.Network{Name: n.Network, IPv4: n.IPv4, Aliases: n.Aliases}); err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker %s: reconnect %s: %w", w.cfg.Node, name, err)
	}
	w.log.Info("held post-copy source put back on its networks", "container", c.Name, "networks", done)
	return nil
}

func lazyResult(nodeName, setID string, err error) error {
	if err != nil {
		return fmt.Errorf("worker %s: post-copy page server of set %s failed before every page was fetched: %w", nodeName, setID, err)
	}
	return nil
}

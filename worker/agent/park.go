package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// A snapshot that stops its containers (Plan.Exit: a migration's, or the checkpoint a
// restore takes of what runs before replacing it) must not end them at their dump:
// if the snapshot then aborts, or the restore after it fails, a container ended at
// its dump is lost (its images are collected with the aborted snapshot). So under
// Exit a container is dumped leaving it running but frozen and network-locked
// ("parked"): the algorithm's later thaw and unlock of it are not carried out. Parked
// containers leave that state in one of three ways:
//
//	snapshot aborts             -> released (thaw, unlock): they run on as before
//	coordinator: Stop           -> ended (SIGKILL while frozen, then thaw): after commit
//	coordinator: Stop, Resume   -> released: the coordinator changed its mind
//	hold deadline (watchdog)    -> released by the worker: this agent or the
//	                               coordinator died; nothing is lost

// parkedSet records the containers parked after their dump, by snapshot (shared by
// the container goroutines and the event loop).
type parkedSet struct {
	mu sync.Mutex
	m  map[string]node.Target // snapshot + "/" + container id
}

func (p *parkedSet) add(snapshot string, t node.Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]node.Target{}
	}
	p.m[snapshot+"/"+t.ID] = t
}

func (p *parkedSet) has(snapshot, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[snapshot+"/"+id]
	return ok
}

// take removes and returns a parked container.
func (p *parkedSet) take(snapshot, id string) (node.Target, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.m[snapshot+"/"+id]
	delete(p.m, snapshot+"/"+id)
	return t, ok
}

// parks says whether a dump of snapshot parks its container (Plan.Exit). Loop-owned
// state.
func (a *Agent) parks(snapshot string) bool {
	p := a.plans[snapshot]
	return p != nil && p.Exit
}

// unpark releases a parked container (thaw, unlock everything): it runs on. Runs on
// the container's own goroutine.
func (a *Agent) unpark(ctx context.Context, snapshot, id string) error {
	t, ok := a.parked.take(snapshot, id)
	if !ok {
		return nil
	}
	if t.PostCopy && a.cfg.Worker.Lazy != nil {
		// Nobody fetches its pages any more: stop its page server before it runs on
		// (pages served after the thaw would not be the dumped ones).
		if err := a.cfg.Worker.Lazy.CancelLazy(ctx, node.SetID(snapshot, t.SetKey())); err != nil {
			a.log.Warn("cannot stop the page server of a released post-copy source; releasing it anyway", "container", id, "snapshot", snapshot, "err", err)
		}
	}
	err := errors.Join(a.thaw(ctx, t), a.unlock(ctx, t, nil))
	if err == nil {
		a.held.set("freeze", t, false)
		a.held.set("lock", t, false)
		a.log.Info("container released after its dump: it runs on", "container", id, "snapshot", snapshot)
	}
	return err
}

// endParked ends a parked container (the worker's Stop). Runs on the container's goroutine.
func (a *Agent) endParked(ctx context.Context, snapshot, id string) error {
	t, ok := a.parked.take(snapshot, id)
	if !ok {
		return fmt.Errorf("container %s of snapshot %s on node %s: %w (its hold expired, or the agent restarted): it was not stopped",
			id, snapshot, a.cfg.Node, node.ErrNotParked)
	}
	if err := a.cfg.Worker.Holder.Stop(ctx, t.ID); err != nil {
		a.parked.add(snapshot, t) // still held: a Resume or the deadline releases it
		return err
	}
	a.held.set("freeze", t, false)
	a.held.set("lock", t, false)
	a.log.Info("container stopped after its snapshot committed", "container", id, "snapshot", snapshot)
	return nil
}

// onContainer runs f on the goroutine of container id's role in snapshot (after the
// actions queued before it) and returns its error. Loop-owned; f runs later.
func (a *Agent) onContainer(ctx context.Context, snapshot, id string, f func(ctx context.Context) error) <-chan error {
	out := make(chan error, 1)
	algo, ok := a.algoOf[snapshot]
	if !ok {
		out <- fmt.Errorf("node %s has no plan of snapshot %s", a.cfg.Node, snapshot)
		return out
	}
	a.queue(ctx, key(algo, id)) <- job{fn: func(ctx context.Context) { out <- f(ctx) }}
	return out
}

// serveStop answers StopSubject.
func (a *Agent) serveStop(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpStop, nil, func(ctx context.Context, req *node.StopRequest, rep *node.StopReply) error {
		var chans []<-chan error
		done := make(chan struct{})
		select {
		case a.inbox <- func() {
			defer close(done)
			for _, id := range req.Containers {
				f := func(ctx context.Context) error { return a.endParked(ctx, req.Snapshot, id) }
				if req.Resume {
					f = func(ctx context.Context) error { return a.unpark(ctx, req.Snapshot, id) }
				}
				chans = append(chans, a.onContainer(ctx, req.Snapshot, id, f))
			}
		}:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-done
		var errs []error
		for _, c := range chans {
			select {
			case err := <-c:
				errs = append(errs, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return errors.Join(errs...)
	})
}

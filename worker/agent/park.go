package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
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
//
// A container released without the coordinator (this agent restarted and released
// what its predecessor parked, or the worker's watchdog did) runs on: its state is
// newer than the snapshot's. A later Stop of it is refused (node.ErrNotParked, naming
// how it was released) and never ends it, a Resume does nothing, and the reply says
// per container what was found (node.StopOutcome: running, or gone when it no longer
// runs), also from an agent that lost the snapshot's plan: the coordinator's
// put-back keeps such a container instead of replacing it by its checkpoint.

// parkedSet records the containers parked after their dump, by snapshot (shared by
// the container goroutines and the event loop).
type parkedSet struct {
	mu  sync.Mutex
	m   map[string]node.Target // snapshot + "/" + container id
	why map[string]string      // snapshot + "/" + container id -> how it was released without us (releasedAs)
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

// releasedAs records why a container parked for snapshot was released without this
// agent (its hold's deadline): a later stop of it says so.
func (p *parkedSet) releasedAs(snapshot, id, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.why == nil {
		p.why = map[string]string{}
	}
	p.why[snapshot+"/"+id] = why
}

// releasedWhy is what releasedAs recorded ("": nothing).
func (p *parkedSet) releasedWhy(snapshot, id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.why[snapshot+"/"+id]
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
	_, err := a.unparkFound(ctx, snapshot, id)
	return err
}

// unparkFound is unpark that says whether the container was parked.
func (a *Agent) unparkFound(ctx context.Context, snapshot, id string) (bool, error) {
	t, ok := a.parked.take(snapshot, id)
	if !ok {
		return false, nil
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
	return true, err
}

// endParked ends a parked container (the worker's Stop). Runs on the container's
// goroutine. A container not parked here is never ended (errNotParked).
func (a *Agent) endParked(ctx context.Context, snapshot, id, why string) (node.StopOutcome, error) {
	t, ok := a.parked.take(snapshot, id)
	if !ok {
		return a.notParked(ctx, snapshot, id, false, why)
	}
	if err := a.cfg.Worker.Holder.Stop(ctx, t.ID); err != nil {
		if errors.Is(err, node.ErrNotFrozen) {
			// The worker released it meanwhile (its hold's deadline): it ran on.
			a.held.set("freeze", t, false)
			a.held.set("lock", t, false)
			why = fmt.Sprintf("released by node %s's worker at its hold's deadline", a.cfg.Node)
			a.parked.releasedAs(snapshot, id, why)
			return a.notParked(ctx, snapshot, id, false, why)
		}
		if a.noLongerRuns(ctx, id) {
			// Ended already (a Stop whose answer was lost with the worker: fault
			// seed 1792), or killed while frozen: it never ran on after its dump.
			a.held.set("freeze", t, false)
			a.held.set("lock", t, false)
			return node.StopOutcome{Container: id, Outcome: node.StopGone, Detail: fmt.Sprintf("container %s no longer runs (it was frozen since its dump)", id)}, nil
		}
		a.parked.add(snapshot, t) // still held: a Resume or the deadline releases it
		return node.StopOutcome{Container: id, Outcome: node.StopUnknown, Detail: err.Error()}, err
	}
	a.held.set("freeze", t, false)
	a.held.set("lock", t, false)
	a.log.Info("container stopped after its snapshot committed", "container", id, "snapshot", snapshot)
	return node.StopOutcome{Container: id, Outcome: node.StopEnded}, nil
}

// resumeParked releases a parked container (a StopRequest with Resume); one not
// parked is only looked at. Runs on the container's goroutine.
func (a *Agent) resumeParked(ctx context.Context, snapshot, id, why string) (node.StopOutcome, error) {
	found, err := a.unparkFound(ctx, snapshot, id)
	if !found {
		return a.notParked(ctx, snapshot, id, true, why)
	}
	if err != nil {
		if a.noLongerRuns(ctx, id) {
			// Ended meanwhile (killed while frozen): nothing of it is held, and it
			// never ran on after its dump.
			a.held.set("freeze", node.Target{ID: id}, false)
			a.held.set("lock", node.Target{ID: id}, false)
			return node.StopOutcome{Container: id, Outcome: node.StopGone, Detail: fmt.Sprintf("container %s no longer runs (it was frozen since its dump)", id)}, nil
		}
		return node.StopOutcome{Container: id, Outcome: node.StopUnknown, Detail: err.Error()}, err
	}
	if a.noLongerRuns(ctx, id) {
		// A release of a container that is gone may succeed (nothing to thaw).
		return node.StopOutcome{Container: id, Outcome: node.StopGone, Detail: fmt.Sprintf("container %s no longer runs (it was frozen since its dump)", id)}, nil
	}
	return node.StopOutcome{Container: id, Outcome: node.StopReleased}, nil
}

// noLongerRuns says whether the worker reads container id as exited or gone (false
// when it cannot tell).
func (a *Agent) noLongerRuns(ctx context.Context, id string) bool {
	st, err := a.containerState(ctx, id)
	return err == nil && (st == worker.ContainerGone || st == worker.ContainerExited)
}

// notParked is the outcome of a stop (or, resume, a release) of container id, which
// this agent does not hold since its dump in snapshot: it is only looked at
// (worker.ContainerStater), never touched. Still there, it ran on since it was
// released (why: how, when known): a stop is refused (node.ErrNotParked, naming it),
// as ending it would lose what it did since. Gone, a stop has nothing to do.
func (a *Agent) notParked(ctx context.Context, snapshot, id string, resume bool, why string) (node.StopOutcome, error) {
	out := node.StopOutcome{Container: id, Outcome: node.StopUnknown}
	if w := a.parked.releasedWhy(snapshot, id); w != "" {
		why = w
	}
	if why == "" {
		why = "released after its dump (its hold expired, or it was released)"
	}
	st, err := a.containerState(ctx, id)
	switch {
	case err != nil:
		// Not touched; the error keeps the worker's (a worker restarting:
		// node.ErrWorkerUnreachable, so the coordinator asks again).
		out.Detail = fmt.Sprintf("container %s was %s, and node %s's worker cannot say whether it still runs: %v", id, why, a.cfg.Node, err)
		return out, fmt.Errorf("container %s was %s, and node %s's worker cannot say whether it still runs (it was not touched): %w", id, why, a.cfg.Node, err)
	case st == worker.ContainerGone || st == worker.ContainerExited:
		out.Outcome, out.Detail = node.StopGone, fmt.Sprintf("container %s is not held since its dump and no longer runs (%s)", id, st)
		return out, nil
	default:
		out.Outcome = node.StopRunning
		out.Detail = fmt.Sprintf("container %s was %s, it runs on where it was", id, why)
	}
	if resume {
		return out, nil
	}
	a.log.Warn("not stopping a container not held since its dump", "container", id, "snapshot", snapshot, "outcome", out.Outcome, "detail", out.Detail)
	return out, fmt.Errorf("%s, with a state newer than snapshot %s's: it was not stopped (%w)", out.Detail, snapshot, node.ErrNotParked)
}

// containerState reads container id's state through the worker, if it can tell.
func (a *Agent) containerState(ctx context.Context, id string) (worker.ContainerState, error) {
	cs, ok := a.cfg.Worker.Holder.(worker.ContainerStater)
	if !ok {
		return "", fmt.Errorf("the worker of node %s cannot tell (older version)", a.cfg.Node)
	}
	return cs.ContainerState(ctx, id)
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

// serveStop answers StopSubject: each container on its goroutine when the
// snapshot's plan is known here (after the actions queued before), else (a
// restarted agent: nothing of the snapshot is parked here) at once, only looked at.
// The reply says each one's outcome; its error joins the refusals.
func (a *Agent) serveStop(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpStop, nil, func(ctx context.Context, req *node.StopRequest, rep *node.StopReply) error {
		type result struct {
			out node.StopOutcome
			err error
		}
		chans := make([]chan result, len(req.Containers))
		done := make(chan struct{})
		select {
		case a.inbox <- func() {
			defer close(done)
			_, planned := a.algoOf[req.Snapshot]
			for i, id := range req.Containers {
				c := make(chan result, 1)
				chans[i] = c
				why := ""
				if a.restartReleased[id] {
					why = fmt.Sprintf("released when node %s's agent restarted", a.cfg.Node)
				}
				f := func(ctx context.Context) {
					var r result
					if req.Resume {
						r.out, r.err = a.resumeParked(ctx, req.Snapshot, id, why)
					} else {
						r.out, r.err = a.endParked(ctx, req.Snapshot, id, why)
					}
					c <- r
				}
				if !planned {
					go f(ctx)
					continue
				}
				a.onContainer(ctx, req.Snapshot, id, func(ctx context.Context) error { f(ctx); return nil })
			}
		}:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-done
		var errs []error
		for _, c := range chans {
			select {
			case r := <-c:
				rep.Containers = append(rep.Containers, r.out)
				errs = append(errs, r.err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return errors.Join(errs...)
	})
}

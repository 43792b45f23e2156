package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

func (a *Agent) serveRestore(ctx context.Context) ([]bus.Subscription, error) {
	r, sets := a.cfg.Worker.Restorer, a.cfg.Worker.Sets
	noRestorer, noSets := a.unavailable(r == nil, "has no restorer"), a.unavailable(sets == nil, "cannot move image sets")
	var s subs
	s.add(serveOp(ctx, a, node.OpSend, noSets, func(ctx context.Context, req *node.SendRequest, rep *node.SendReply) error {
		res, err := sets.Send(ctx, req.Set, req.To)
		rep.AlreadyThere = res.AlreadyThere
		return err
	}))
	s.add(serveOp(ctx, a, node.OpRestore, noRestorer, func(ctx context.Context, req *node.RestoreRequest, rep *node.RestoreReply) error {
		if req.Options.Locked && req.Options.LockFor <= 0 {
			req.Options.LockFor = 2 * time.Minute
		}
		ref, err := r.Restore(ctx, req.Set, restoreOptions(req.Options))
		rep.Container = ref.ID
		return err
	}))
	s.add(serveOp(ctx, a, node.OpUnlock, noRestorer, func(ctx context.Context, req *node.UnlockRequest, rep *node.UnlockReply) error {
		var errs []error
		for _, id := range req.Containers {
			if err := a.unlock(ctx, node.Target{ID: id, Node: a.cfg.Node}, nil); err != nil {
				errs = append(errs, fmt.Errorf("unlock %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}))
	s.add(serveOp(ctx, a, node.OpDrop, noSets, func(ctx context.Context, req *node.DropRequest, rep *node.DropReply) error {
		// A dump of this set still running finishes, then sees the tombstone and drops
		// what it wrote (see execute).
		a.drops.add(req.Set)
		return sets.DropSet(ctx, req.Set)
	}))
	s.add(serveOp(ctx, a, node.OpRemove, noRestorer, func(ctx context.Context, req *node.RemoveRequest, rep *node.RemoveReply) error {
		var errs []error
		for _, id := range req.Containers {
			if err := r.RemoveContainer(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}))
	s.add(serveOp(ctx, a, node.OpVerify, noSets, func(ctx context.Context, req *node.VerifyRequest, rep *node.VerifyReply) error {
		if req.Digests {
			files, err := a.digests(ctx, req.Set)
			rep.Files = files
			return err
		}
		var err error
		rep.Sockets, err = a.verify(ctx, req.Set, req.Label, req.Files, req.Recheck)
		return err
	}))
	a.serveTasks(ctx, &s)
	a.servePostCopy(ctx, &s)
	a.servePreCopy(ctx, &s)       // precopy.go
	a.serveDrain(ctx, &s)         // drain.go
	a.serveXlate(ctx, &s)         // xlate.go
	a.serveXlates(ctx, &s)        // xlate.go
	s.add(a.serveStandalone(ctx)) // standalone.go
	return s.done()
}

// tombstones remembers recently dropped sets (for an hour), so that a dump still
// running when its snapshot's sets were dropped drops its own set when it ends.
type tombstones struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (d *tombstones) add(set string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = map[string]time.Time{}
	}
	now := time.Now()
	for s, t := range d.at {
		if now.Sub(t) > time.Hour {
			delete(d.at, s)
		}
	}
	d.at[set] = now
}

func (d *tombstones) has(set string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.at[set]
	return ok
}

// Swarm-native restores (docs/restore.md): a set is placed for the next task of a
// service slot, swarm's replacement task is restored by the runtime wrapper.

// servePostCopy answers the operations on the source of a post-copy migration: take
// it off its networks (OpDisconnect), wait for its last page (OpWaitLazy), put it
// back on them after a failed restore (OpReconnect).
func (a *Agent) servePostCopy(ctx context.Context, s *subs) {
	lz := a.cfg.Worker.Lazy
	unavailable := a.unavailable(lz == nil, "cannot serve post-copy migrations")
	s.add(serveOp(ctx, a, node.OpDisconnect, unavailable, func(ctx context.Context, req *node.DisconnectRequest, rep *node.DisconnectReply) error {
		var errs []error
		for _, id := range req.Containers {
			if err := lz.DisconnectHeld(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("disconnect %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}))
	s.add(serveOp(ctx, a, node.OpWaitLazy, unavailable, func(ctx context.Context, req *node.WaitLazyRequest, rep *node.WaitLazyReply) error {
		return lz.WaitLazy(ctx, req.Set)
	}))
	s.add(serveOp(ctx, a, node.OpReconnect, unavailable, func(ctx context.Context, req *node.ReconnectRequest, rep *node.ReconnectReply) error {
		var errs []error
		for _, h := range req.Containers {
			if h.Set != "" {
				// Nobody fetches its pages any more: its page server stops before it
				// gets its addresses back (and before its release thaws it).
				if err := lz.CancelLazy(ctx, h.Set); err != nil {
					a.log.Warn("cannot stop the page server of a post-copy source put back; reconnecting it anyway", "container", h.Container, "set", h.Set, "err", err)
				}
			}
			if err := lz.ReconnectHeld(ctx, h.Container, h.Networks); err != nil {
				errs = append(errs, fmt.Errorf("reconnect %s: %w", h.Container, err))
			}
		}
		return errors.Join(errs...)
	}))
}

func (a *Agent) serveTasks(ctx context.Context, s *subs) {
	tr := a.cfg.Worker.Tasks
	unavailable := a.unavailable(tr == nil, "cannot restore swarm tasks")
	s.add(serveOp(ctx, a, node.OpPlace, unavailable, func(ctx context.Context, req *node.PlaceRequest, rep *node.PlaceReply) error {
		p, err := tr.PlaceTask(ctx, req.Set, taskOptions(*req))
		rep.Connections, rep.Closed = p.Connections, p.Closed
		return err
	}))
	s.add(serveOp(ctx, a, node.OpAddressMap, unavailable, func(ctx context.Context, req *node.AddressMapRequest, rep *node.AddressMapReply) error {
		return tr.SetAddressMap(ctx, req.Service, req.Slot, req.Addresses)
	}))
	s.add(serveOp(ctx, a, node.OpUnplace, unavailable, func(ctx context.Context, req *node.UnplaceRequest, rep *node.UnplaceReply) error {
		r, err := tr.UnplaceTask(ctx, req.Service, req.Slot, req.Set)
		rep.Removed, rep.Container = r.Removed, r.Claimed
		return err
	}))
}

// unavailable is the error of the operations of a role the worker lacks (when
// missing): node.ErrNoWorker, saying what the agent cannot do.
func (a *Agent) unavailable(missing bool, what string) error {
	if !missing {
		return nil
	}
	return node.Mark(fmt.Errorf("the agent of node %s %s (run it with a worker)", a.cfg.Node, what), node.ErrNoWorker)
}

// reply is what serveOp needs of a reply: its status, and its duration when it has one
// (node.OpStatus).
type reply interface{ Set(err error) }

type timed interface{ Took(d time.Duration) }

// serveOp answers the requests of operation op on this node: it decodes each into a
// Req, runs f, and answers with the Rep f filled in, its status set from f's error
// (and its duration, if it has one). When unavailable is not nil, it is every
// request's error and f is not called.
func serveOp[Req, Rep any, P interface {
	*Rep
	reply
}](ctx context.Context, a *Agent, op node.Op, unavailable error, f func(ctx context.Context, req *Req, rep *Rep) error) (bus.Subscription, error) {
	return a.cfg.Bus.Subscribe(op.Subject(a.cfg.Node), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			start := time.Now()
			var req Req
			var rep Rep
			err := unavailable
			if err == nil {
				if derr := json.Unmarshal(m.Data, &req); derr != nil {
					err = node.Mark(fmt.Errorf("bad %s request: %w", op, derr), node.ErrInvalidArgument)
				} else {
					err = f(ctx, &req, &rep)
				}
			}
			P(&rep).Set(err)
			a.cfg.Metrics.Op(string(op), time.Since(start), opResult(err))
			if t, ok := any(P(&rep)).(timed); ok {
				t.Took(time.Since(start))
			}
			a.respond(m, rep)
		}()
	})
}

// subs collects an agent's subscriptions; after the first error it adds none and
// done undoes the ones made.
type subs struct {
	list []bus.Subscription
	err  error
}

func (s *subs) add(sub bus.Subscription, err error) {
	switch {
	case s.err != nil:
		if err == nil {
			_ = sub.Unsubscribe()
		}
	case err != nil:
		s.err = err
	default:
		s.list = append(s.list, sub)
	}
}

func (s *subs) done() ([]bus.Subscription, error) {
	if s.err != nil {
		for _, x := range s.list {
			_ = x.Unsubscribe()
		}
		return nil, s.err
	}
	return s.list, nil
}

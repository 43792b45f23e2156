package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Restorer moves and restores image sets on this node (the worker's data plane).
type Restorer interface {
	// Addr is this node's transfer endpoint (host:port), where other nodes send sets.
	Addr() string
	// Send streams image set set to the worker at toAddr, which verifies checksums;
	// alreadyThere: the target held the same set already and nothing was sent.
	Send(ctx context.Context, set, toAddr string) (alreadyThere bool, err error)
	// Restore restores image set set on this node and returns the container id.
	Restore(ctx context.Context, set string, o node.RestoreOptions) (string, error)
	// DropSet deletes image set set from this node; dropping a missing set succeeds.
	DropSet(ctx context.Context, set string) error
	// Remove force-removes a container restored on this node (by id), to undo a
	// restore; removing one that is gone succeeds.
	Remove(ctx context.Context, container string) error
	// Verify re-hashes image set set on this node, checks every file against want (the
	// snapshot's manifest: same names, sizes and sha256, nothing missing or extra) and
	// returns the TCP sockets of its CRIU images labelled label, as JSON (the cut
	// checker's []cut.Socket): `inspect --verify` without reading images remotely.
	Verify(ctx context.Context, set, label string, want []store.File) (json.RawMessage, error)
}

func (a *Agent) serveRestore(ctx context.Context) ([]bus.Subscription, error) {
	r := a.cfg.Restorer
	var unavailable error
	if r == nil {
		unavailable = node.Mark(fmt.Errorf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node), node.ErrNoWorker)
	}
	var s subs
	s.add(serveOp(ctx, a, node.OpSend, unavailable, func(ctx context.Context, req *node.SendRequest, rep *node.SendReply) error {
		var err error
		rep.AlreadyThere, err = r.Send(ctx, req.Set, req.To)
		return err
	}))
	s.add(serveOp(ctx, a, node.OpRestore, unavailable, func(ctx context.Context, req *node.RestoreRequest, rep *node.RestoreReply) error {
		if req.Options.Locked && req.Options.LockFor <= 0 {
			req.Options.LockFor = 2 * time.Minute
		}
		var err error
		rep.Container, err = r.Restore(ctx, req.Set, req.Options)
		return err
	}))
	s.add(serveOp(ctx, a, node.OpUnlock, unavailable, func(ctx context.Context, req *node.UnlockRequest, rep *node.UnlockReply) error {
		var errs []error
		for _, id := range req.Containers {
			if err := a.cfg.Exec.Unlock(ctx, node.Target{ID: id, Node: a.cfg.Node}, nil); err != nil {
				errs = append(errs, fmt.Errorf("unlock %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}))
	s.add(serveOp(ctx, a, node.OpDrop, unavailable, func(ctx context.Context, req *node.DropRequest, rep *node.DropReply) error {
		// A dump of this set still running finishes, then sees the tombstone and drops
		// what it wrote (see execute).
		a.drops.add(req.Set)
		return r.DropSet(ctx, req.Set)
	}))
	s.add(serveOp(ctx, a, node.OpRemove, unavailable, func(ctx context.Context, req *node.RemoveRequest, rep *node.RemoveReply) error {
		var errs []error
		for _, id := range req.Containers {
			if err := r.Remove(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}))
	s.add(serveOp(ctx, a, node.OpVerify, unavailable, func(ctx context.Context, req *node.VerifyRequest, rep *node.VerifyReply) error {
		var err error
		rep.Sockets, err = r.Verify(ctx, req.Set, req.Label, req.Files)
		return err
	}))
	a.serveTasks(ctx, &s)
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

// TaskRestorer is what a node's Restorer offers for swarm-native restores (optional:
// the agent answers these subjects with an error when its Restorer lacks it).
type TaskRestorer interface {
	// PlaceTask verifies set req.Set and places it for the next task of req.Service
	// slot req.Slot on this node; it returns the set's connections on non-loopback
	// addresses and those that will be closed (no address map announced).
	PlaceTask(ctx context.Context, req node.PlaceRequest) (connections, closed []string, err error)
	// SetAddressMap gives the set placed for service slot its address map.
	SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error
	// UnplaceTask takes back the set placed for service slot unless a task claimed it
	// (moved back to image set set when possible); claimed is the container that
	// claimed it, if any.
	UnplaceTask(ctx context.Context, service string, slot int, set string) (removed bool, claimed string, err error)
}

func (a *Agent) serveTasks(ctx context.Context, s *subs) {
	tr, _ := a.cfg.Restorer.(TaskRestorer)
	var unavailable error
	if tr == nil {
		unavailable = node.Mark(fmt.Errorf("the agent of node %s cannot restore swarm tasks (its restorer has no task placement; run it with a worker)", a.cfg.Node), node.ErrNoWorker)
	}
	s.add(serveOp(ctx, a, node.OpPlace, unavailable, func(ctx context.Context, req *node.PlaceRequest, rep *node.PlaceReply) error {
		var err error
		rep.Connections, rep.Closed, err = tr.PlaceTask(ctx, *req)
		return err
	}))
	s.add(serveOp(ctx, a, node.OpAddressMap, unavailable, func(ctx context.Context, req *node.AddressMapRequest, rep *node.AddressMapReply) error {
		return tr.SetAddressMap(ctx, req.Service, req.Slot, req.Addresses)
	}))
	s.add(serveOp(ctx, a, node.OpUnplace, unavailable, func(ctx context.Context, req *node.UnplaceRequest, rep *node.UnplaceReply) error {
		var err error
		rep.Removed, rep.Container, err = tr.UnplaceTask(ctx, req.Service, req.Slot, req.Set)
		return err
	}))
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

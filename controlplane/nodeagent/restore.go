package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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
	Restore(ctx context.Context, set string, o RestoreOptions) (string, error)
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

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Name    string `json:"name,omitempty"`
	Service string `json:"service,omitempty"`
	Slot    int    `json:"slot,omitempty"`
	// Locked restores the container with its network locked (every packet but
	// loopback dropped) from before its sockets are restored until an UnlockRequest (or
	// the deadline): a restored container must not talk to a peer whose sockets are not
	// restored yet, whose kernel would reset the connection.
	Locked bool `json:"locked,omitempty"`
	// Aliases are extra DNS aliases per network name (swarm's task aliases).
	Aliases map[string][]string `json:"aliases,omitempty"`
	// LockFor bounds the lock (the worker's watchdog releases it then). Default 2m.
	LockFor time.Duration `json:"lock_for,omitempty"`
	// Keep leaves the set on this node after the restore (the worker restores from a
	// hard-linked copy): the coordinator asks for it when the set is the snapshot's own
	// copy here, so that a restore in place does not use it up.
	Keep bool `json:"keep,omitempty"`
}

// SetID names the image set of a container (SERVICE.SLOT, or its id) in a snapshot.
func SetID(snapshot, key string) string { return snapshot + "." + key }

// SendSubject and RestoreSubject are a node agent's transfer and restore requests.
func SendSubject(node string) string    { return "swarmckpt.v1.agent." + node + ".send" }
func RestoreSubject(node string) string { return "swarmckpt.v1.agent." + node + ".restore" }

// DropSubject deletes an image set from a node (DropRequest, answered by OpReply).
func DropSubject(node string) string { return "swarmckpt.v1.agent." + node + ".drop" }

// VerifySubject re-verifies an image set on its node and returns its TCP sockets
// (VerifyRequest, answered by OpReply with Sockets).
func VerifySubject(node string) string { return "swarmckpt.v1.agent." + node + ".verify" }

// VerifyRequest names the set to verify, the label of its sockets and the files the
// snapshot's manifest lists for it.
type VerifyRequest struct {
	Set   string       `json:"set"`
	Label string       `json:"label"`
	Files []store.File `json:"files"`
}

// RemoveSubject removes restored containers (UnlockRequest lists them), to undo a
// restore that failed elsewhere.
func RemoveSubject(node string) string { return "swarmckpt.v1.agent." + node + ".remove" }

// DropRequest names the image set to delete.
type DropRequest struct {
	Set string `json:"set"`
}

// UnlockSubject releases restored containers' network locks.
func UnlockSubject(node string) string { return "swarmckpt.v1.agent." + node + ".unlock" }

// UnlockRequest lists containers (ids) to unlock.
type UnlockRequest struct {
	Containers []string `json:"containers"`
}

// SendRequest asks a node to stream a set to another node's transfer endpoint.
type SendRequest struct {
	Set string `json:"set"`
	To  string `json:"to"`
}

// RestoreRequest asks a node to restore a set.
type RestoreRequest struct {
	Set     string         `json:"set"`
	Options RestoreOptions `json:"options"`
}

// OpReply answers SendRequest and RestoreRequest.
type OpReply struct {
	Container string `json:"container,omitempty"`
	// Sockets answers a VerifyRequest ([]cut.Socket as JSON).
	Sockets json.RawMessage `json:"sockets,omitempty"`
	MS      int64           `json:"ms"`
	Error   string          `json:"error,omitempty"`
	// AlreadyThere answers a SendRequest whose target held the set already (a
	// migration streamed it there while dumping): nothing was sent.
	AlreadyThere bool `json:"already_there,omitempty"`
	// Connections and Closed answer a PlaceRequest (TaskPlacement); Removed and
	// Container (the container that claimed the set) an UnplaceRequest.
	Connections []string `json:"connections,omitempty"`
	Closed      []string `json:"closed,omitempty"`
	Removed     bool     `json:"removed,omitempty"`
}

func (a *Agent) serveRestore(ctx context.Context) ([]bus.Subscription, error) {
	r := a.cfg.Restorer
	unavailable := ""
	if r == nil {
		unavailable = fmt.Sprintf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node)
	}
	handle := func(subject string, f func(ctx context.Context, data []byte, rep *OpReply) error) (bus.Subscription, error) {
		return a.serveOp(ctx, subject, unavailable, f)
	}
	s1, err := handle(SendSubject(a.cfg.Node), func(ctx context.Context, data []byte, rep *OpReply) error {
		var req SendRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return err
		}
		var err error
		rep.AlreadyThere, err = r.Send(ctx, req.Set, req.To)
		return err
	})
	if err != nil {
		return nil, err
	}
	s2, err := handle(RestoreSubject(a.cfg.Node), func(ctx context.Context, data []byte, rep *OpReply) error {
		var req RestoreRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return err
		}
		if req.Options.Locked && req.Options.LockFor <= 0 {
			req.Options.LockFor = 2 * time.Minute
		}
		var err error
		rep.Container, err = r.Restore(ctx, req.Set, req.Options)
		return err
	})
	if err != nil {
		_ = s1.Unsubscribe()
		return nil, err
	}
	s3, err := handle(UnlockSubject(a.cfg.Node), func(ctx context.Context, data []byte, rep *OpReply) error {
		var req UnlockRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return err
		}
		var errs []error
		for _, id := range req.Containers {
			if err := a.cfg.Exec.Unlock(ctx, Target{ID: id, Node: a.cfg.Node}, nil); err != nil {
				errs = append(errs, fmt.Errorf("unlock %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		_ = s1.Unsubscribe()
		_ = s2.Unsubscribe()
		return nil, err
	}
	s4, err := handle(DropSubject(a.cfg.Node), func(ctx context.Context, data []byte, rep *OpReply) error {
		var req DropRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return err
		}
		// A dump of this set still running finishes, then sees the tombstone and drops
		// what it wrote (see runAction).
		a.drops.add(req.Set)
		return r.DropSet(ctx, req.Set)
	})
	if err != nil {
		_ = s1.Unsubscribe()
		_ = s2.Unsubscribe()
		_ = s3.Unsubscribe()
		return nil, err
	}
	s5, err := handle(RemoveSubject(a.cfg.Node), func(ctx context.Context, data []byte, rep *OpReply) error {
		var req UnlockRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return err
		}
		var errs []error
		for _, id := range req.Containers {
			if err := r.Remove(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		for _, s := range []bus.Subscription{s1, s2, s3, s4} {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	s6, err := a.cfg.Bus.Subscribe(VerifySubject(a.cfg.Node), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			start := time.Now()
			var rep OpReply
			var req VerifyRequest
			switch err := json.Unmarshal(m.Data, &req); {
			case err != nil:
				rep.Error = "bad verify request: " + err.Error()
			case r == nil:
				rep.Error = fmt.Sprintf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node)
			default:
				socks, err := r.Verify(ctx, req.Set, req.Label, req.Files)
				if err != nil {
					rep.Error = err.Error()
				}
				rep.Sockets = socks
			}
			rep.MS = time.Since(start).Milliseconds()
			a.respond(m, rep)
		}()
	})
	if err != nil {
		for _, s := range []bus.Subscription{s1, s2, s3, s4, s5} {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	tsubs, err := a.serveTasks(ctx)
	if err != nil {
		for _, s := range []bus.Subscription{s1, s2, s3, s4, s5, s6} {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	ssub, err := a.serveStandalone(ctx) // standalone.go
	if err != nil {
		for _, s := range append([]bus.Subscription{s1, s2, s3, s4, s5, s6}, tsubs...) {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	return append([]bus.Subscription{s1, s2, s3, s4, s5, s6, ssub}, tsubs...), nil
}

// SetKey names t's image set within a snapshot: SERVICE.SLOT, or its id.
func (t Target) SetKey() string {
	if t.Service != "" {
		return fmt.Sprintf("%s.%d", t.Service, t.Slot)
	}
	return t.ID
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
	PlaceTask(ctx context.Context, req PlaceRequest) (connections, closed []string, err error)
	// SetAddressMap gives the set placed for service slot its address map.
	SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error
	// UnplaceTask takes back the set placed for service slot unless a task claimed it
	// (moved back to image set set when possible); claimed is the container that
	// claimed it, if any.
	UnplaceTask(ctx context.Context, service string, slot int, set string) (removed bool, claimed string, err error)
}

// PlaceSubject places a set for a swarm task (PlaceRequest, answered by OpReply with
// Connections and Closed).
func PlaceSubject(node string) string { return "swarmckpt.v1.agent." + node + ".place" }

// AddressMapSubject gives a placed set its address map (AddressMapRequest).
func AddressMapSubject(node string) string { return "swarmckpt.v1.agent." + node + ".address-map" }

// UnplaceSubject takes back a placed set (UnplaceRequest, answered by OpReply with
// Removed and Container = the container that claimed it).
func UnplaceSubject(node string) string { return "swarmckpt.v1.agent." + node + ".unplace" }

// PlaceRequest places image set Set for the next task of Service slot Slot.
type PlaceRequest struct {
	Set     string `json:"set"`
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// LockFor, when > 0, restores the task network-locked until an UnlockRequest or
	// this long from now (the worker's watchdog releases it then).
	LockFor time.Duration `json:"lock_for,omitempty"`
	// AddressMapFor, when > 0, has the wrapper wait this long for the address map.
	AddressMapFor time.Duration `json:"address_map_for,omitempty"`
}

// AddressMapRequest gives Service slot Slot's placed set its address map.
type AddressMapRequest struct {
	Service   string            `json:"service"`
	Slot      int               `json:"slot"`
	Addresses map[string]string `json:"addresses"`
}

// UnplaceRequest takes back the set placed for Service slot Slot (back to image set
// Set when possible).
type UnplaceRequest struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Set     string `json:"set,omitempty"`
}

func (a *Agent) serveTasks(ctx context.Context) ([]bus.Subscription, error) {
	tr, _ := a.cfg.Restorer.(TaskRestorer)
	unavailable := ""
	if tr == nil {
		unavailable = fmt.Sprintf("the agent of node %s cannot restore swarm tasks (its restorer has no task placement; run it with a worker)", a.cfg.Node)
	}
	handle := func(subject string, f func(ctx context.Context, data []byte, rep *OpReply) error) (bus.Subscription, error) {
		return a.serveOp(ctx, subject, unavailable, f)
	}
	var subs []bus.Subscription
	undo := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for subject, f := range map[string]func(ctx context.Context, data []byte, rep *OpReply) error{
		PlaceSubject(a.cfg.Node): func(ctx context.Context, data []byte, rep *OpReply) error {
			var req PlaceRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return fmt.Errorf("bad place request: %w", err)
			}
			var err error
			rep.Connections, rep.Closed, err = tr.PlaceTask(ctx, req)
			return err
		},
		AddressMapSubject(a.cfg.Node): func(ctx context.Context, data []byte, rep *OpReply) error {
			var req AddressMapRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return fmt.Errorf("bad address map request: %w", err)
			}
			return tr.SetAddressMap(ctx, req.Service, req.Slot, req.Addresses)
		},
		UnplaceSubject(a.cfg.Node): func(ctx context.Context, data []byte, rep *OpReply) error {
			var req UnplaceRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return fmt.Errorf("bad unplace request: %w", err)
			}
			var err error
			rep.Removed, rep.Container, err = tr.UnplaceTask(ctx, req.Service, req.Slot, req.Set)
			return err
		},
	} {
		s, err := handle(subject, f)
		if err != nil {
			undo()
			return nil, err
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// serveOp answers the requests on subject with the OpReply f fills in (MS is set here);
// when unavailable is not empty, it is every request's error and f is not called.
func (a *Agent) serveOp(ctx context.Context, subject, unavailable string, f func(ctx context.Context, data []byte, rep *OpReply) error) (bus.Subscription, error) {
	return a.cfg.Bus.Subscribe(subject, func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			start := time.Now()
			var rep OpReply
			if unavailable != "" {
				rep.Error = unavailable
			} else if err := f(ctx, m.Data, &rep); err != nil {
				rep.Error = err.Error()
			}
			rep.MS = time.Since(start).Milliseconds()
			a.respond(m, rep)
		}()
	})
}

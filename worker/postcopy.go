package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// LazyWaiter is the source side of a held post-copy dump (DumpWith with Lazy and
// LeaveRunning): WaitLazy blocks until its page server ended and returns nil once
// every page was served, the page server's error otherwise.
// CancelLazy stops that page server (the restore side, if any, fails): the release
// of a parked container after an aborted migration; nil when none runs.
// DisconnectHeld takes a frozen container (the source of a held post-copy dump) off
// every network it is on (docker network disconnect -f), so that its restore on
// another node can take its addresses while it still serves pages; refused
// (ErrNotFrozen) for a container that is not frozen.
// ReconnectHeld puts such a container back on the networks it was on (nets: address
// and aliases on each; one it is on already is left as it is): the rollback of a
// post-copy migration whose restore failed, after CancelLazy and before its release.
type LazyWaiter interface {
	WaitLazy(ctx context.Context, setID string) error
	CancelLazy(ctx context.Context, setID string) error
	DisconnectHeld(ctx context.Context, containerName string) error
	ReconnectHeld(ctx context.Context, containerName string, nets []node.NetworkAttach) error
}

// ErrNoLazy: no held post-copy dump of that set on this node (none was made here, or
// this worker restarted since: its page server ended with it).
var ErrNoLazy = node.Mark(errors.New("no post-copy page server of this set on this node"), node.ErrNotFound)

var (
	_ LazyWaiter = (*Client)(nil)
	_ LazyWaiter = (*Fake)(nil)
)

// WaitLazy implements LazyWaiter: POST /v1/sets/{id}/waitlazy.
func (c *Client) WaitLazy(ctx context.Context, setID string) error {
	return c.call(ctx, http.MethodPost, "/v1/sets/"+setID+"/waitlazy", apiRequest{}, nil)
}

// CancelLazy implements LazyWaiter: POST /v1/sets/{id}/cancellazy.
func (c *Client) CancelLazy(ctx context.Context, setID string) error {
	return c.call(ctx, http.MethodPost, "/v1/sets/"+setID+"/cancellazy", apiRequest{}, nil)
}

// DisconnectHeld implements LazyWaiter: POST /v1/containers/{name}/disconnect.
func (c *Client) DisconnectHeld(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/containers/"+url.PathEscape(name)+"/disconnect", apiRequest{}, nil)
}

// ReconnectHeld implements LazyWaiter: POST /v1/containers/{name}/reconnect.
func (c *Client) ReconnectHeld(ctx context.Context, name string, nets []node.NetworkAttach) error {
	return c.call(ctx, http.MethodPost, "/v1/containers/"+url.PathEscape(name)+"/reconnect", apiRequest{Networks: nets}, nil)
}

// ReconnectHeld implements LazyWaiter: recorded (Reconnected), and the container
// no longer counts as disconnected.
func (f *Fake) ReconnectHeld(_ context.Context, name string, nets []node.NetworkAttach) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected = slices.DeleteFunc(f.disconnected, func(n string) bool { return n == name })
	if f.reconnected == nil {
		f.reconnected = map[string][]node.NetworkAttach{}
	}
	f.reconnected[name] = slices.Clone(nets)
	return nil
}

// Reconnected returns the networks ReconnectHeld put each container back on.
func (f *Fake) Reconnected() map[string][]node.NetworkAttach {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.reconnected)
}

// DisconnectHeld implements LazyWaiter: refused for a container that is not frozen;
// recorded otherwise (Disconnected).
func (f *Fake) DisconnectHeld(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen[name] {
		return fmt.Errorf("fake worker %s: disconnect %s: %w: only a held post-copy source is taken off its networks", f.Node, name, ErrNotFrozen)
	}
	f.disconnected = append(f.disconnected, name)
	return nil
}

// Disconnected returns the containers DisconnectHeld took off their networks.
func (f *Fake) Disconnected() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.disconnected...)
}

// WaitLazy implements LazyWaiter: a fake worker serves no pages (ErrNoLazy), unless
// LazyWait is set and setID was dumped post-copy here: LazyWait's answer then (an
// error once CancelLazy stopped it).
func (f *Fake) WaitLazy(ctx context.Context, setID string) error {
	f.mu.Lock()
	wait, serving, dumped := f.LazyWait, f.lazy[setID], false
	if f.lazy != nil {
		_, dumped = f.lazy[setID]
	}
	f.mu.Unlock()
	switch {
	case wait == nil || !dumped:
		return fmt.Errorf("fake worker %s: set %s: %w", f.Node, setID, ErrNoLazy)
	case !serving:
		return fmt.Errorf("fake worker %s: post-copy page server of set %s failed before every page was fetched: stopped (CancelLazy)", f.Node, setID)
	}
	return wait(ctx, setID)
}

// CancelLazy implements LazyWaiter: a fake worker serves no pages, so there is
// nothing to stop (with LazyWait, the set's page server counts as stopped); the call
// is recorded (LazyCancelled).
func (f *Fake) CancelLazy(_ context.Context, setID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lazyCancelled = append(f.lazyCancelled, setID)
	if f.lazy[setID] {
		f.lazy[setID] = false
	}
	return nil
}

// LazyCancelled returns the sets whose page server CancelLazy was asked to stop.
func (f *Fake) LazyCancelled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lazyCancelled...)
}

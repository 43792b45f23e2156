package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

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
type LazyWaiter interface {
	WaitLazy(ctx context.Context, setID string) error
	CancelLazy(ctx context.Context, setID string) error
	DisconnectHeld(ctx context.Context, containerName string) error
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

// WaitLazy implements LazyWaiter: a fake worker serves no pages.
func (f *Fake) WaitLazy(context.Context, string) error { return ErrNoLazy }

// CancelLazy implements LazyWaiter: a fake worker serves no pages, so there is
// nothing to stop; the call is recorded (LazyCancelled).
func (f *Fake) CancelLazy(_ context.Context, setID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lazyCancelled = append(f.lazyCancelled, setID)
	return nil
}

// LazyCancelled returns the sets whose page server CancelLazy was asked to stop.
func (f *Fake) LazyCancelled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lazyCancelled...)
}

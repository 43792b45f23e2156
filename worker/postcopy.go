package worker

import (
	"context"
	"errors"
	"net/http"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// LazyWaiter is the source side of a held post-copy dump (DumpWith with Lazy and
// LeaveRunning): WaitLazy blocks until its page server ended and returns nil once
// every page was served, the page server's error otherwise.
// CancelLazy stops that page server (the restore side, if any, fails): the release
// of a parked container after an aborted migration; nil when none runs.
type LazyWaiter interface {
	WaitLazy(ctx context.Context, setID string) error
	CancelLazy(ctx context.Context, setID string) error
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

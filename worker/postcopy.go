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
type LazyWaiter interface {
	WaitLazy(ctx context.Context, setID string) error
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

// WaitLazy implements LazyWaiter: a fake worker serves no pages.
func (f *Fake) WaitLazy(context.Context, string) error { return ErrNoLazy }

package worker

import (
	"context"
	"net/http"
	"net/url"

	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// StandaloneService lists the containers exact-mode restores created for a stack on
// this node (docs/restore.md "Restoring a restored stack"). *Worker and *Client
// implement it.
type StandaloneService interface {
	// Standalone returns this node's restored containers of stack's services (every
	// state; Running tells which run).
	Standalone(ctx context.Context, stack string) ([]restore.Standalone, error)
}

var _ StandaloneService = (*Client)(nil)

// Standalone implements StandaloneService.
func (c *Client) Standalone(ctx context.Context, stack string) ([]restore.Standalone, error) {
	var out []restore.Standalone
	err := c.call(ctx, http.MethodGet, "/v1/standalone?stack="+url.QueryEscape(stack), apiRequest{}, &out)
	return out, err
}

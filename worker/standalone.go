package worker

import (
	"context"
	"net/http"
	"net/url"

	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// Standalone implements Inspector.
func (c *Client) Standalone(ctx context.Context, stack string) ([]restore.Standalone, error) {
	var out []restore.Standalone
	err := c.call(ctx, http.MethodGet, "/v1/standalone?stack="+url.QueryEscape(stack), apiRequest{}, &out)
	return out, err
}

package worker

import (
	"context"
	"fmt"
	"net/http"
)

// CheckDump implements Dumper: POST /v1/containers/{name}/dumpable. A worker that
// does not know the route (an older version) cannot tell: nil, and its Lock still
// refuses what it must.
func (c *Client) CheckDump(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodPost, cpath(name, "dumpable"), nil)
	if err != nil {
		return fmt.Errorf("worker at %s: check dump of %s: %w", c.Addr, name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
		resp.Header.Get("Content-Type") != "application/json" {
		return nil // the route is unknown there, not a refusal
	}
	return c.remoteError(resp)
}

package worker

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// CheckDump implements Dumper: POST /v1/containers/{name}/dumpable. A worker that
// does not know the route (an older version) cannot tell: nil, and its Lock still
// refuses what it must.
func (c *Client) CheckDump(ctx context.Context, name string) error {
	return c.check(ctx, cpath(name, "dumpable"), nil, "check dump of "+name)
}

// check POSTs a check (body may be nil) to path: nil when the worker accepts, or
// when it does not know the route (an older version cannot tell, which is not a
// refusal); else the worker's refusal. what names the check in a transport error.
func (c *Client) check(ctx context.Context, path string, body io.Reader, what string) error {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return fmt.Errorf("worker at %s: %s: %w", c.Addr, what, err)
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

package worker

import (
	"context"
	"fmt"
	"net/http"
)

// DumpChecker checks, without touching the container, that this node can dump it: what
// the worker would refuse at Lock, Freeze or Dump (container.Dumpable: a process of
// another user while the worker lacks CAP_SYS_RESOURCE). The node agent asks it for
// every container of a snapshot plan, so that such a snapshot is refused before any
// container of the stack is locked. The Worker and the Client offer it.
type DumpChecker interface {
	CheckDump(ctx context.Context, containerName string) error
}

var _ DumpChecker = (*Client)(nil)

// CheckDump implements DumpChecker: POST /v1/containers/{name}/dumpable. A worker that
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

package worker

import (
	"context"
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

// CheckDump implements DumpChecker: POST /v1/containers/{name}/dumpable.
func (c *Client) CheckDump(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, cpath(name, "dumpable"), apiRequest{}, nil)
}

package workerexec

import (
	"context"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

var _ nodeagent.DumpChecker = (*Exec)(nil)

// CheckDump implements nodeagent.DumpChecker; a worker without the check passes.
func (e *Exec) CheckDump(ctx context.Context, c node.Target) error {
	if ch, ok := e.W.(worker.DumpChecker); ok {
		return ch.CheckDump(ctx, c.ID)
	}
	return nil
}

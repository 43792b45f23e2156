package agent

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

func (a *Agent) serveStandalone(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpStandalone, nil, func(ctx context.Context, req *node.StandaloneRequest, rep *node.StandaloneReply) error {
		rep.Node = a.cfg.Node
		if a.cfg.Worker.Inspector == nil {
			return node.Mark(fmt.Errorf("the agent of node %s cannot list restored containers (run it with a worker)", a.cfg.Node), node.ErrNoWorker)
		}
		var err error
		rep.Containers, err = a.cfg.Worker.Inspector.Standalone(ctx, req.Stack)
		return err
	})
}

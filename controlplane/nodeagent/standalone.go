package nodeagent

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// StandaloneLister is what a node's Restorer offers to list restored containers
// (optional: the agent answers with an error when its Restorer lacks it).
type StandaloneLister interface {
	Standalone(ctx context.Context, stack string) ([]node.Standalone, error)
}

func (a *Agent) serveStandalone(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpStandalone, nil, func(ctx context.Context, req *node.StandaloneRequest, rep *node.StandaloneReply) error {
		rep.Node = a.cfg.Node
		l, ok := a.cfg.Restorer.(StandaloneLister)
		if !ok {
			return node.Mark(fmt.Errorf("the agent of node %s cannot list restored containers (run it with a worker of this version)", a.cfg.Node), node.ErrNoWorker)
		}
		var err error
		rep.Containers, err = l.Standalone(ctx, req.Stack)
		return err
	})
}

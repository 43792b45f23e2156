package nodeagent

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// HoldLister is what a node's Executor offers to list its holds (optional: the agent
// answers with an error when its Executor lacks it).
type HoldLister interface {
	Holds(ctx context.Context) ([]node.Held, error)
}

func (a *Agent) serveHolds(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpHolds, nil, func(ctx context.Context, _ *node.HoldsRequest, rep *node.HoldsReply) error {
		rep.Node = a.cfg.Node
		l, ok := a.cfg.Exec.(HoldLister)
		if !ok {
			return node.Mark(fmt.Errorf("the agent of node %s cannot list its worker's holds (run it with a worker of this version)", a.cfg.Node), node.ErrNoWorker)
		}
		var err error
		rep.Holds, err = l.Holds(ctx)
		return err
	})
}

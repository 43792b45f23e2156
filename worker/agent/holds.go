package agent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

func (a *Agent) serveHolds(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpHolds, nil, func(ctx context.Context, _ *node.HoldsRequest, rep *node.HoldsReply) error {
		rep.Node = a.cfg.Node
		var err error
		rep.Holds, err = a.cfg.Worker.Holder.Holds(ctx)
		return err
	})
}

package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

func (a *Agent) servePreflight(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpPreflight, nil, func(ctx context.Context, req *node.PreflightRequest, rep *node.PreflightReply) error {
		if a.cfg.Worker.Restorer == nil {
			return node.Mark(fmt.Errorf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node), node.ErrNoWorker)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r, err := a.cfg.Worker.Restorer.Preflight(cctx, preflightRequest(*req))
		rep.Missing, rep.Problems = r.Missing, r.Problems
		return err
	})
}

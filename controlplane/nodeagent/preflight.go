package nodeagent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// Preflighter is what a node's Restorer offers for pre-flight checks (optional: an
// agent whose Restorer lacks it answers Unsupported).
type Preflighter interface {
	Preflight(ctx context.Context, req node.PreflightRequest) (node.PreflightReply, error)
}

func (a *Agent) servePreflight(ctx context.Context) (bus.Subscription, error) {
	return serveOp(ctx, a, node.OpPreflight, nil, func(ctx context.Context, req *node.PreflightRequest, rep *node.PreflightReply) error {
		if a.cfg.Restorer == nil {
			return node.Mark(fmt.Errorf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node), node.ErrNoWorker)
		}
		p, ok := a.cfg.Restorer.(Preflighter)
		if !ok {
			rep.Unsupported = true
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r, err := p.Preflight(cctx, *req)
		r.Status = rep.Status
		*rep = r
		return err
	})
}

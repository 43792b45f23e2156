package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// checkTimeout bounds the checks of one plan.
const checkTimeout = 10 * time.Second

// checkPlan returns why this node cannot dump its containers of p (a zero Status
// when it can), asked when the plan arrives, so that the snapshot fails before any
// container of the stack is locked or frozen: the worker's CheckDump of each
// container (e.g. a process of another user while the worker lacks
// CAP_SYS_RESOURCE), then, where the worker is a worker.SpaceChecker, the disk space
// of the sets this node's dumps write here (localDumps; refused with reason
// "no_space").
func (a *Agent) checkPlan(ctx context.Context, p *node.Plan) node.Status {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, c := range p.Containers {
		if c.Node != a.cfg.Node {
			continue
		}
		if err := a.cfg.Worker.Dumper.CheckDump(ctx, c.ID); err != nil {
			return refused(fmt.Sprintf("%s.%d: %v", c.Service, c.Slot, err))
		}
	}
	sc, ok := a.cfg.Worker.Dumper.(worker.SpaceChecker)
	if !ok {
		return node.Status{}
	}
	if err := sc.CheckSpace(ctx, localDumps(a.cfg.Node, p)); err != nil {
		st := node.StatusOf(err)
		st.Code = node.CodeFailedPrecondition // a refusal, as every other of a plan
		return st
	}
	return node.Status{}
}

// localDumps are the dumps of p on node that write their set, memory pages included,
// on this node: every one but a direct migration's (Direct: the pages go straight to
// the target, no set is kept here), a post-copy one's (its pages are served, not
// written) and a pre-copy one's (its pre-dumps are written already; the last one
// writes only what changed since).
func localDumps(nodeName string, p *node.Plan) []worker.SpaceDump {
	var out []worker.SpaceDump
	for _, c := range p.Containers {
		if c.Node != nodeName || (c.StreamTo != "" && (c.Direct || c.PreCopy)) || c.PostCopy {
			continue
		}
		out = append(out, worker.SpaceDump{Container: c.ID, Label: c.SetKey()})
	}
	return out
}

package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// checkTimeout bounds the checks of one plan.
const checkTimeout = 10 * time.Second

// checkPlan returns why this node cannot dump its containers of p ("" when it can):
// the worker's CheckDump (e.g. a process of another user while the worker lacks
// CAP_SYS_RESOURCE), asked for each container when the plan arrives, so that the
// snapshot fails before any container of the stack is locked or frozen.
func (a *Agent) checkPlan(ctx context.Context, p *node.Plan) string {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, c := range p.Containers {
		if c.Node != a.cfg.Node {
			continue
		}
		if err := a.cfg.Worker.Dumper.CheckDump(ctx, c.ID); err != nil {
			return fmt.Sprintf("%s.%d: %v", c.Service, c.Slot, err)
		}
	}
	return ""
}

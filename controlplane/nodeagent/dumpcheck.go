package nodeagent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// DumpChecker is implemented by Executors that can tell, without touching a container,
// that its dump would be refused on this node (workerexec: the worker's CheckDump, e.g.
// a process of another user while the worker lacks CAP_SYS_RESOURCE). The agent asks
// it for each of its containers when a plan arrives and refuses the plan on the first
// error, so the snapshot fails before any container of the stack is locked or frozen.
type DumpChecker interface {
	CheckDump(ctx context.Context, c node.Target) error
}

// checkTimeout bounds the checks of one plan.
const checkTimeout = 10 * time.Second

// checkPlan returns why this node cannot dump its containers of p ("" when it can, or
// when its Executor cannot tell).
func (a *Agent) checkPlan(ctx context.Context, p *node.Plan) string {
	ch, ok := a.cfg.Exec.(DumpChecker)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, c := range p.Containers {
		if c.Node != a.cfg.Node {
			continue
		}
		if err := ch.CheckDump(ctx, c); err != nil {
			return fmt.Sprintf("%s.%d: %v", c.Service, c.Slot, err)
		}
	}
	return ""
}

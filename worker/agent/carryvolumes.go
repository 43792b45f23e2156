package agent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// dumpCarrying is a dump that packs c's local named volumes into its set
// (snapshot --carry-volumes), streamed to c.StreamTo when set. As dumpTo, a dump whose
// stream alone failed stands: the restore sends the set (streamed).
func (a *Agent) dumpCarrying(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	m, err := a.cfg.Worker.Dumper.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: leaveRunning, StreamTo: c.StreamTo, CarryVolumes: true})
	return a.streamed(ctx, c, set, m, err)
}

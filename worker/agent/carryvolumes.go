package agent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// dumpCarrying is a dump that packs c's local named volumes into its set
// (snapshot --carry-volumes), streamed to c.StreamTo when set. As dumpTo, a dump whose
// stream alone failed stands: the restore sends the set.
func (a *Agent) dumpCarrying(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	m, err := a.cfg.Worker.Dumper.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: leaveRunning, StreamTo: c.StreamTo, CarryVolumes: true})
	if err != nil {
		if c.StreamTo == "" {
			return protocol.DumpStats{}, err
		}
		local, verr := a.verified(ctx, set, c.SetKey())
		if verr != nil {
			return protocol.DumpStats{}, err // the dump itself failed: no set here
		}
		a.log.Warn("streaming a migration's images to its target failed; the set is intact here and the restore will send it",
			"container", c.SetKey(), "set", set, "to", c.StreamTo, "err", err)
		m = local
	}
	return a.stats(set, m, ""), nil
}

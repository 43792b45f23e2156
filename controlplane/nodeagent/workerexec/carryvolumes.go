package workerexec

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// dumpCarrying is a dump that packs c's local named volumes into its set
// (snapshot --carry-volumes), streamed to c.StreamTo when set. As dumpTo, a dump whose
// stream alone failed stands: the restore sends the set.
func (e *Exec) dumpCarrying(ctx context.Context, c nodeagent.Target, set string, leaveRunning bool) (*nodeagent.DumpResult, error) {
	od, ok := e.W.(worker.OptionDumper)
	if !ok {
		return nil, fmt.Errorf("workerexec: this node's worker cannot carry volumes (%T)", e.W)
	}
	m, err := od.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: leaveRunning, StreamTo: c.StreamTo, CarryVolumes: true})
	if err != nil {
		if c.StreamTo == "" {
			return nil, err
		}
		local, verr := imageset.Verify(e.Info.SetDir(set))
		if verr != nil {
			return nil, err // the dump itself failed: no set here
		}
		e.log().Warn("streaming a migration's images to its target failed; the set is intact here and the restore will send it",
			"container", key(c), "set", set, "to", c.StreamTo, "err", err)
		m = local
	}
	return &nodeagent.DumpResult{Stats: protocol.DumpStats{ImageBytes: uint64(m.TotalBytes())}, Images: ImageSet(e.Info, set, m)}, nil
}

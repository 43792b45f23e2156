package agent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// servePreCopy answers OpPreCopy: the pre-dumps of a pre-copy migration, run by the
// worker (worker.PreCopier) while the container runs, before the snapshot that
// locks, freezes and dumps it (dumpPreCopied).
func (a *Agent) servePreCopy(ctx context.Context, s *subs) {
	pc := a.cfg.Worker.PreCopier
	unavailable := a.unavailable(pc == nil, "cannot pre-dump containers (pre-copy)")
	s.add(serveOp(ctx, a, node.OpPreCopy, unavailable, func(ctx context.Context, req *node.PreCopyRequest, rep *node.PreCopyReply) error {
		r, err := pc.PreCopy(ctx, req.Container, req.Set, req.To)
		for _, x := range r.Rounds {
			rep.Rounds = append(rep.Rounds, x.Bytes)
		}
		rep.Why, rep.SentTo, rep.SendError = r.Why, r.SentTo, r.SendError
		return err
	}))
}

// dumpPreCopied is a pre-copy migration's dump (c.PreCopy with c.StreamTo): the
// worker takes the pre-dumps it kept for the set (OpPreCopy) and writes only the
// pages dirtied since the last; the set, pre-dumps included, streams to the target as
// for dumpTo, and the set here stands if only the stream failed (streamed). A dump
// whose pre-dumps are gone (the worker restarted since) fails: the snapshot aborts
// and the container runs on.
func (a *Agent) dumpPreCopied(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	m, err := a.cfg.Worker.Dumper.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: leaveRunning, StreamTo: c.StreamTo, PreCopied: true, CarryVolumes: c.CarryVolumes})
	return a.streamed(ctx, c, set, m, err)
}

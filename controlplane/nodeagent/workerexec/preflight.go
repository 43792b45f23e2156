package workerexec

import (
	"context"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

var _ nodeagent.Preflighter = (*Exec)(nil)

// Preflight implements nodeagent.Preflighter through the worker; a worker without it
// (older) answers Unsupported.
func (e *Exec) Preflight(ctx context.Context, req nodeagent.PreflightRequest) (nodeagent.PreflightReply, error) {
	p, ok := e.W.(worker.Preflighter)
	if !ok {
		return nodeagent.PreflightReply{Unsupported: true}, nil
	}
	wr := worker.PreflightRequest{Check: restore.Check{Stack: req.Stack}, Prepare: req.Prepare}
	for _, c := range req.Containers {
		wr.Containers = append(wr.Containers, restore.CheckContainer{Key: c.Key, Name: c.Name, Image: c.Image, Volumes: c.Volumes})
	}
	for _, a := range req.Addresses {
		wr.Addresses = append(wr.Addresses, restore.CheckAddress{Key: a.Key, IP: a.IP, Networks: a.Networks})
	}
	for _, s := range req.Sets {
		ps := worker.PreflightSet{Set: s.Set, Target: s.Target, Key: s.Key}
		for _, f := range s.Files {
			ps.Files = append(ps.Files, worker.PreflightFile{Name: f.Name, Size: f.Size})
		}
		wr.Sets = append(wr.Sets, ps)
	}
	rep, err := p.Preflight(ctx, wr)
	return nodeagent.PreflightReply{Missing: rep.Missing, Problems: rep.Problems}, err
}

package nodeagent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

var _ Preflighter = (*FakeExecutor)(nil)

// Preflight implements Preflighter: the sets of req not on this node are Missing,
// PreflightProblems are reported as they are; a Prepare request is only recorded
// (Prepared).
func (f *FakeExecutor) Preflight(_ context.Context, req node.PreflightRequest) (node.PreflightReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep node.PreflightReply
	if req.Prepare {
		f.prepared = append(f.prepared, req)
		return rep, nil
	}
	for _, s := range req.Sets {
		if !f.sets[s.Set] {
			rep.Missing = append(rep.Missing, s.Set)
		}
	}
	rep.Problems = append(rep.Problems, f.PreflightProblems...)
	return rep, nil
}

// Prepared returns the Prepare requests this node got, in order.
func (f *FakeExecutor) Prepared() []node.PreflightRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]node.PreflightRequest(nil), f.prepared...)
}

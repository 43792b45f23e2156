package nodeagent

import "context"

var _ Preflighter = (*FakeExecutor)(nil)

// Preflight implements Preflighter: the sets of req not on this node are Missing,
// PreflightProblems are reported as they are.
func (f *FakeExecutor) Preflight(_ context.Context, req PreflightRequest) (PreflightReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep PreflightReply
	for _, s := range req.Sets {
		if !f.sets[s.Set] {
			rep.Missing = append(rep.Missing, s.Set)
		}
	}
	rep.Problems = append(rep.Problems, f.PreflightProblems...)
	return rep, nil
}

package coordinator

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// status answers swarmckpt status: the coordinators (from the election), the nodes
// (heartbeats and memberlist metadata) and the held stack locks. What cannot be read
// is left out and named in Warnings.
func (s *Service) status(ctx context.Context) *api.StatusResult {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res := &api.StatusResult{Coordinator: s.cfg.Name, Workers: s.live.live(), Started: s.started}
	if s.cfg.Elector != nil {
		cs, err := s.cfg.Elector.Candidates(ctx)
		if err != nil {
			res.Warnings = append(res.Warnings, "coordinators: "+err.Error())
		}
		res.Coordinators = cs
	} else {
		me := s.candidate()
		me.Leader, me.LeaderSince = s.leading()
		res.Coordinators = []store.Candidate{me}
	}
	res.Nodes = s.nodes(res.Workers)
	locks, err := s.cfg.Store.ListLocks(ctx)
	if err != nil {
		res.Warnings = append(res.Warnings, "stack locks: "+err.Error())
	}
	for _, l := range locks {
		res.Operations = append(res.Operations, operationOf(l))
	}
	return res
}

// operationOf splits a lock's owner (lockStack: COORDINATOR/OP, OP a snapshot id or
// restore-|migrate-|rm-ID-SUFFIX).
func operationOf(l store.LockInfo) api.Operation {
	op := api.Operation{Stack: l.Stack, Owner: l.Owner, Kind: "snapshot"}
	i := strings.LastIndex(l.Owner, "/")
	op.Coordinator, op.ID = l.Owner[:max(i, 0)], l.Owner[i+1:]
	for _, k := range []string{"restore", "migrate", "rm"} {
		if rest, ok := strings.CutPrefix(op.ID, k+"-"); ok {
			op.Kind, op.ID = k, rest
			if j := strings.LastIndex(rest, "-"); j > 0 {
				op.ID = rest[:j] // the owner's unique suffix
			}
			break
		}
	}
	return op
}

// nodes merges the live workers with the memberlist membership's worker members.
func (s *Service) nodes(live []store.Worker) []api.NodeStatus {
	by := map[string]*api.NodeStatus{}
	for _, w := range live {
		by[w.Node] = &api.NodeStatus{Node: w.Node, Live: true, WorkerAddr: w.Address, CRIUVersion: w.CRIUVersion, Features: w.Features}
	}
	if s.cfg.Members != nil {
		for _, m := range s.cfg.Members() {
			if m.Role != "worker" || m.Node == "" {
				continue
			}
			n := by[m.Node]
			if n == nil {
				n = &api.NodeStatus{Node: m.Node}
				by[m.Node] = n
			}
			n.Member = true
			if m.WorkerAddr != "" {
				n.WorkerAddr = m.WorkerAddr
			}
			if m.CRIUVersion != "" {
				n.CRIUVersion = m.CRIUVersion
			}
			if len(m.Features) > 0 {
				n.Features = m.Features
			}
		}
	}
	out := make([]api.NodeStatus, 0, len(by))
	for _, n := range by {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

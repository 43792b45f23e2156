package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// restoreSwarm serves RestoreRequest with api.ModeSwarm: the Stopper must also be a
// stack.Swarm (stack.Docker is), the Restorer a *AgentRestorer (its Nodes
// transfer addresses are used).
// j, when not nil, is the migration's journal: the stop and the restore are
// journaled in it (opjournal.go).
func (s *Restores) restoreSwarm(ctx context.Context, m *store.Manifest, req api.RestoreRequest, pk *parkedStack, j *opJournal) (*api.RestoreResult, error) {
	if len(req.Targets) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--node cannot be honoured with --mode swarm: swarm places the replacement tasks itself (use --mode exact to choose nodes)")
	}
	sw, ok := s.cfg.Stopper.(stack.Swarm)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator has no swarm manager API (run it with --docker MANAGER_SOCKET)")
	}
	ar, ok := s.restorer().(*AgentRestorer)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator's restorer does not talk to node agents")
	}
	var nodes []string
	for _, w := range s.live() {
		nodes = append(nodes, w.Node)
	}
	sort.Strings(nodes)
	for _, c := range req.Constraints {
		// migrate --to/--from: a node without a live worker cannot take the tasks (and
		// an unknown one would leave them pending until the timeout).
		if n, ok := strings.CutPrefix(c, "node.hostname=="); ok && !slices.Contains(nodes, n) {
			return nil, api.Errorf(api.CodeNoWorker, "node %s has no live worker (live: %v)", n, nodes)
		}
	}
	// Swarm can place the tasks only on nodes the hostname constraints allow: the sets
	// go there only (--to NODE: one node instead of all of them).
	live := nodes
	if nodes = stack.EligibleNodes(nodes, req.Constraints); len(nodes) == 0 {
		return nil, api.Errorf(api.CodeNoWorker, "no node with a live worker satisfies %v (live: %v)", req.Constraints, live)
	}
	kill := s.killTasks
	if pk != nil {
		kill = pk.killFunc() // a migration's parked containers end with the stop
	}
	sr := &SwarmRestore{Nodes: ar.Nodes, Swarm: sw, Events: s.event, Log: s.log, Kill: kill,
		RemoveStandalone: func(ctx context.Context) error { _, err := s.removeStandalone(ctx, m); return err }}
	start := time.Now()
	// The stop begins inside Run: from here a coordinator started after a crash rolls
	// the migration back (Decide). Without the journal it does not begin.
	if err := j.step(ctx, StepStopping, func(op *store.Operation) {
		op.Mode, op.Nodes, op.Constraints = api.ModeSwarm, nodes, req.Constraints
	}); err != nil {
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed: cannot journal its stop in the store: %v; check that etcd answers, then try again", m.ID, err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: fmt.Sprintf("as swarm tasks (swarm places them; sets go to %v)", nodes)})
	out, rerr := sr.Run(ctx, m, nodes, req.Constraints)
	if rerr == nil {
		_ = j.step(ctx, StepRestored, nil)
	}
	rec := store.Restore{At: time.Now().UTC(), OK: rerr == nil, Mode: api.ModeSwarm}
	if out != nil {
		rec.Targets, rec.Addresses = out.Targets, out.Addresses
	}
	if rerr != nil {
		rec.Error = "mode swarm: " + rerr.Error()
	}
	m.Restores = append(m.Restores, rec)
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record restore", "snapshot", m.ID, "err", err)
	}
	if rerr != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restore-failed", Message: rerr.Error()})
		var ae *api.Error
		if errors.As(rerr, &ae) {
			return nil, rerr
		}
		return nil, api.Errorf(api.CodeFailed, "restore of %s as swarm tasks: %v", m.ID, rerr)
	}
	res := &api.RestoreResult{ID: m.ID, Mode: api.ModeSwarm, Targets: out.Targets, Containers: out.Containers,
		Addresses: out.Addresses, Closed: out.Closed, TotalMS: time.Since(start).Milliseconds()}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", Message: fmt.Sprintf("as swarm tasks; phases (ms): %v", out.PhaseMS), MS: res.TotalMS})
	return res, nil
}

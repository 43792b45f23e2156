package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
//
// own says whether this is a restore of its own (Restore): it takes the stack's lock,
// journals itself (opjournal.go) and, unless req.DiscardRunning, checkpoints what
// runs of the stack first (putback.go), whose containers end with the stop; if the
// restore fails once the stop began, that checkpoint is put back (swarmPutBack: as
// swarm tasks, the services at the replicas they had; failing that, on the original
// nodes as exact mode does). Otherwise j is the migration's journal and pk its parked
// snapshot: the stop and the restore are journaled in j, and a failure is the
// migration's to roll back.
func (s *Restores) restoreSwarm(ctx context.Context, m *store.Manifest, req api.RestoreRequest, own bool, pk *parkedStack, j *opJournal) (*api.RestoreResult, error) {
	if len(req.Targets) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--node cannot be honoured with --mode swarm: swarm places the replacement tasks itself (use --mode exact to choose nodes)")
	}
	if _, err := s.swarmRestorer(nil, nil); err != nil {
		return nil, err
	}
	if _, _, err := PlanSlots(m); err != nil { // checked before anything is touched
		return nil, err
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
	var before *store.Manifest // own: what ran, checkpointed: put back if the restore fails
	if own {
		// One restore, migration or snapshot of a stack at a time, and no rm of the
		// snapshot while it is restored (remove takes the same lock).
		lock, owner, unlock, err := s.lockStackUntil(ctx, m.Stack, "restore-"+m.ID)
		if err != nil {
			return nil, err
		}
		defer unlock()
		// Journaled from here, as an exact restore (the checkpoint's id chosen first).
		checkpoint := ""
		if !req.DiscardRunning {
			checkpoint = s.cfg.NewID(m.Stack, time.Now())
		}
		if j, err = s.beginOp(ctx, owner, "restore", m.Stack, m.ID, checkpoint, nil); err != nil {
			return nil, err
		}
		defer j.end(ctx)
		if checkpoint != "" {
			if before, err = s.checkpointRunning(ctx, m, lock, checkpoint); err != nil {
				return nil, err
			}
		}
		if before != nil {
			pk = s.newParkedStack(before)
		}
	}
	kill := s.killTasks
	if pk != nil {
		kill = pk.killFunc() // the parked containers end with the stop
	}
	var (
		stopDone bool              // the stop is done: the services at 0
		stopped  map[string]uint64 // the replicas the stop found
	)
	sr, _ := s.swarmRestorer(kill, func(ctx context.Context) error { _, err := s.removeStandalone(ctx, m); return err })
	sr.Stopped = func(ctx context.Context, replicas map[string]uint64) error {
		// The services are at 0: the parked containers end now if the stop killed
		// none (a stack of standalone containers), and the stop is journaled with
		// the replicas it found (the last resort's scale-back).
		stopDone, stopped = true, replicas
		_ = j.step(ctx, StepRestoring, func(op *store.Operation) { op.Stopped = replicas })
		return pk.end(ctx)
	}
	start := time.Now()
	// The stop begins inside Run: from here a coordinator started after a crash rolls
	// the restore or migration back (Decide): it takes back the placements on nodes,
	// removes the constraints and puts the parked snapshot back. Without the journal
	// it does not begin.
	if err := j.step(ctx, StepStopping, func(op *store.Operation) {
		op.Mode, op.Nodes, op.Constraints = api.ModeSwarm, nodes, req.Constraints
		if own && before == nil {
			op.Parked = "" // nothing ran, or --discard-running
		}
	}); err != nil {
		pk.release(ctx)
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed (stack %s runs as before): cannot journal its stop in the store: %v; check that etcd answers, then try again", m.ID, m.Stack, err)
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
		if own {
			return nil, s.swarmFailed(ctx, m, before, pk, j, stopDone, stopped, rerr)
		}
		var ae *api.Error
		if errors.As(rerr, &ae) {
			return nil, rerr
		}
		return nil, api.Errorf(api.CodeFailed, "restore of %s as swarm tasks: %v", m.ID, rerr)
	}
	res := &api.RestoreResult{ID: m.ID, Mode: api.ModeSwarm, Targets: out.Targets, Containers: out.Containers,
		Addresses: out.Addresses, Closed: out.Closed, TotalMS: time.Since(start).Milliseconds()}
	if before != nil {
		res.Before = before.ID
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", Message: fmt.Sprintf("as swarm tasks; phases (ms): %v", out.PhaseMS), MS: res.TotalMS})
	return res, nil
}

// swarmRestorer is the SwarmRestore of this coordinator (its Stopper as the swarm,
// its AgentRestorer's nodes), killing the stack's tasks with kill and removing an
// earlier exact restore's standalone containers with removeStandalone; an error
// says why swarm mode is not available.
func (s *Restores) swarmRestorer(kill func(ctx context.Context, byNode map[string][]string), removeStandalone func(ctx context.Context) error) (*SwarmRestore, error) {
	sw, ok := s.cfg.Stopper.(stack.Swarm)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator has no swarm manager API (run it with --docker MANAGER_SOCKET)")
	}
	ar, ok := s.restorer().(*AgentRestorer)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator's restorer does not talk to node agents")
	}
	return &SwarmRestore{Nodes: ar.Nodes, Swarm: sw, Events: s.event, Log: s.log, Kill: kill, RemoveStandalone: removeStandalone}, nil
}

// swarmFailed ends a swarm-mode restore of its own that failed with cause (Run
// undid its own steps: the services at 0, its placements taken back). If the stop
// never happened (not stopDone, the parked containers not ended), they are released
// and run on;
// else the checkpoint of what ran (before) is put back (swarmPutBack); without one
// (nothing ran, or --discard-running), the services are scaled back to the
// replicas the stop found, fresh.
func (s *Restores) swarmFailed(ctx context.Context, m, before *store.Manifest, pk *parkedStack, j *opJournal, stopDone bool, stopped map[string]uint64, cause error) error {
	if pk != nil && !pk.wasEnded() && !stopDone {
		pk.release(ctx)
		return api.Errorf(api.CodeFailed, "restore of %s as swarm tasks failed before anything was stopped (stack %s runs as before; its checkpoint %s is kept): %v", m.ID, m.Stack, before.ID, cause)
	}
	if before == nil {
		return s.scaleBack(ctx, m, stopped, cause)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "putting-back", Message: "restore failed: putting the stack back from " + before.ID + ": " + cause.Error()})
	err := s.swarmPutBack(ctx, before, j)
	if err == nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: "the stack's services run again at the replicas they had, with their state, from " + before.ID})
		return api.Errorf(api.CodeFailed, "restore of %s as swarm tasks failed, so the stack was put back: its services run again with the state they had (from snapshot %s, taken just before): %v",
			m.ID, before.ID, cause)
	}
	s.log.Warn("putting the checkpoint back as swarm tasks failed: putting it back on its original nodes", "snapshot", before.ID, "err", err)
	return s.putBack(ctx, m, before, nil, s.replicasBefore(&store.Operation{}, stopped, before), fmt.Errorf("%w (and putting %s back as swarm tasks failed: %v)", cause, before.ID, err))
}

// swarmPutBack restores parked (the checkpoint of a stack taken before a swarm-mode
// restore replaced it, or a swarm-mode migration's own snapshot) as swarm tasks where
// they ran: the services come back at the replicas they had, every task from its
// container's checkpoint, on the nodes with a live worker that ran them
// (putBackPlacement: a node the failed operation moved the stack to, maybe the
// reason it failed, is kept out by placement constraints, removed again once the
// tasks run or the put-back is undone). What still runs of the stack is stopped
// first (Run's stop). j (nil: none) journals the candidate nodes and constraints
// first, so that a coordinator started after a crash mid-way takes the placements and
// constraints back (undoPlacements).
func (s *Restores) swarmPutBack(ctx context.Context, parked *store.Manifest, j *opJournal) error {
	sr, err := s.swarmRestorer(s.killTasks, func(ctx context.Context) error { _, err := s.removeStandalone(ctx, parked); return err })
	if err != nil {
		return err
	}
	if _, _, err := PlanSlots(parked); err != nil {
		return err
	}
	nodes, constraints := s.putBackPlacement(parked)
	if pr, ok := s.cfg.Stopper.(stack.PlacementReader); ok && len(constraints) > 0 {
		// A constraint a service has of its own stays: the undo and the end of Run
		// remove what they added.
		own, err := pr.Placement(ctx, parked.Stack)
		if err != nil {
			constraints, nodes = nil, s.liveNodes()
		}
		for _, cs := range own {
			constraints = slices.DeleteFunc(constraints, func(c string) bool { return slices.Contains(cs, c) })
		}
	}
	if len(nodes) == 0 {
		return api.Errorf(api.CodeNoWorker, "no live worker to put %s back on", parked.ID)
	}
	if err := j.record(ctx, func(op *store.Operation) {
		for _, n := range nodes {
			if !slices.Contains(op.Nodes, n) {
				op.Nodes = append(op.Nodes, n)
			}
		}
		for _, c := range constraints {
			if !slices.Contains(op.Constraints, c) {
				op.Constraints = append(op.Constraints, c)
			}
		}
	}); err != nil && len(constraints) > 0 {
		// Unjournaled, constraints left by a crash mid-way would pin the services.
		constraints, nodes = nil, s.liveNodes()
	}
	_, err = sr.Run(context.WithoutCancel(ctx), parked, nodes, constraints)
	return err
}

// putBackPlacement says where a swarm-mode put-back of parked runs: nodes are the
// nodes with a live worker that ran parked's containers (where they were), and
// constraints keep swarm off every other node it might pick: the other live nodes
// (among them the node a failed migration moved the stack to) and the containers'
// nodes without a live worker (a task there would start fresh). When none of its
// nodes has a live worker, every live node, unconstrained.
func (s *Restores) putBackPlacement(parked *store.Manifest) (nodes, constraints []string) {
	live := s.liveNodes()
	own := map[string]bool{}
	for _, c := range parked.Containers {
		own[c.Node] = true
	}
	for _, n := range live {
		if own[n] {
			nodes = append(nodes, n)
		} else {
			constraints = append(constraints, "node.hostname!="+n)
		}
	}
	if len(nodes) == 0 {
		return live, nil
	}
	for _, n := range slices.Sorted(maps.Keys(own)) {
		if n != "" && !slices.Contains(live, n) {
			constraints = append(constraints, "node.hostname!="+n)
		}
	}
	return nodes, constraints
}

// liveNodes are the nodes with a live worker, sorted.
func (s *Restores) liveNodes() []string {
	var nodes []string
	for _, w := range s.live() {
		nodes = append(nodes, w.Node)
	}
	sort.Strings(nodes)
	return nodes
}

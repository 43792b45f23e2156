package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

type subErr struct {
	sub bus.Subscription
	err error
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "%v", err)
	case errors.Is(err, store.ErrCorrupt):
		return api.Errorf(api.CodeCorrupt, "%v", err)
	}
	return err
}

func (s *Service) serveAPI() []subErr {
	var out []subErr
	add := func(sub bus.Subscription, err error) { out = append(out, subErr{sub, err}) }
	t := s.cfg.Bus
	add(api.Serve(t, api.OpSnapshot, func(ctx context.Context, req *api.SnapshotRequest) (*api.SnapshotResult, error) {
		defer s.userOp(req.Stack)() // reconcile.go: waits for a scheduled run of the stack
		s.policyDefaults(req)
		m, err := s.Snapshot(ctx, *req)
		if m == nil {
			return nil, err
		}
		return &api.SnapshotResult{Snapshot: m}, err
	}))
	add(api.Serve(t, api.OpAbort, func(ctx context.Context, req *api.AbortRequest) (*api.AbortResult, error) {
		if err := s.Abort(req.ID, req.Reason); err != nil {
			return nil, err
		}
		return &api.AbortResult{ID: req.ID}, nil
	}))
	add(api.Serve(t, api.OpList, func(ctx context.Context, req *api.ListRequest) (*api.ListResult, error) {
		if err := validListRequest(*req); err != nil {
			return nil, err
		}
		ms, err := s.cfg.Store.List(ctx, req.Stack)
		if err != nil {
			return nil, err
		}
		if ms == nil {
			ms = []*store.Manifest{}
		}
		return &api.ListResult{Snapshots: ms}, nil
	}))
	add(api.Serve(t, api.OpInspect, func(ctx context.Context, req *api.InspectRequest) (*api.InspectResult, error) {
		if err := api.ValidID(req.ID); err != nil {
			return nil, err
		}
		m, err := s.cfg.Store.Get(ctx, req.ID)
		if err != nil {
			return nil, storeErr(err)
		}
		if req.Verify {
			if s.cfg.Verify == nil {
				return nil, api.Errorf(api.CodeFailed, "this coordinator has no cut checker configured")
			}
			if m.State != store.StateCommitted {
				return &api.InspectResult{Snapshot: m}, api.Errorf(api.CodeBadRequest, "snapshot %s is %s: only committed snapshots have a cut to verify", m.ID, m.State)
			}
			m.Verdict = s.cfg.Verify(ctx, m)
			s.verifyCopies(ctx, m) // replicate.go: each copy's outcome in its Copy.Error
			if err := s.cfg.Store.Update(ctx, m); err != nil {
				s.log.Warn("cannot store verdict", "snapshot", m.ID, "err", err)
			}
		}
		return &api.InspectResult{Snapshot: m}, nil
	}))
	add(api.Serve(t, api.OpRemove, func(ctx context.Context, req *api.RemoveRequest) (*api.RemoveResult, error) {
		if err := api.ValidID(req.ID); err != nil {
			return nil, err
		}
		if s.active(req.ID) != nil {
			return nil, api.Errorf(api.CodeBusy, "snapshot %s is still running: abort it first", req.ID)
		}
		defer s.userOpOf(ctx, req.ID)()
		return s.remove(ctx, req.ID)
	}))
	add(api.Serve(t, api.OpStatus, func(ctx context.Context, req *api.StatusRequest) (*api.StatusResult, error) {
		return s.status(ctx), nil
	}))
	add(api.Serve(t, api.OpRestore, func(ctx context.Context, req *api.RestoreRequest) (*api.RestoreResult, error) {
		defer s.userOpOf(ctx, req.ID)()
		return s.Restore(ctx, *req)
	}))
	add(api.Serve(t, api.OpMigrate, func(ctx context.Context, req *api.MigrateRequest) (*api.MigrateResult, error) {
		defer s.userOp(req.Stack)()
		return s.Migrate(ctx, *req)
	}))
	add(api.Serve(t, api.OpPolicy, func(ctx context.Context, req *api.PolicyRequest) (*api.PolicyResult, error) {
		if req.Stack != "" {
			if err := api.ValidStack(req.Stack); err != nil {
				return nil, err
			}
		}
		if s.rec == nil {
			return nil, api.Errorf(api.CodeFailed, "this coordinator runs no policy reconciler (it was started with --policy=false): stacks' swarmckpt labels are not applied")
		}
		return s.rec.describe(ctx, req.Stack)
	}))
	return out
}

// Restore restores a committed snapshot on target nodes. In exact mode nothing is
// changed until the nodes said the restore can run (preflight); if it fails after the
// stack's services were stopped, they are started again at their previous replicas.
func (s *Service) Restore(ctx context.Context, req api.RestoreRequest) (*api.RestoreResult, error) {
	if err := validRestoreRequest(req); err != nil { // validate.go
		return nil, err
	}
	res, _, err := s.restore(ctx, req, true, nil, nil)
	return res, err
}

// restore serves Restore. stopped are the replicas of the services it scaled to 0
// (nil when it stopped nothing or cannot tell). own says whether this is a restore of
// its own (Restore), which checkpoints what runs of the stack before it replaces it
// (so that a failure puts it back with its state, unless req.DiscardRunning) and
// starts the services again when even that fails; Migrate passes false (its rollback
// restores the originals from its own snapshot), the stack lock it holds and its
// snapshot's parked containers (ended by the stop, parkedStack).
func (s *Service) restore(ctx context.Context, req api.RestoreRequest, own bool, held store.Lock, pk *parkedStack) (res *api.RestoreResult, stopped map[string]uint64, err error) {
	scaleBack := own
	m, err := s.cfg.Store.Get(ctx, req.ID)
	if err != nil {
		return nil, nil, storeErr(err)
	}
	if s.cfg.Restorer == nil {
		return nil, nil, api.Errorf(api.CodeFailed, "restore is not available: this coordinator has no restorer (the workers' restore primitive is not wired yet)")
	}
	if m.State != store.StateCommitted {
		return nil, nil, api.Errorf(api.CodeBadRequest, "snapshot %s is %s: only committed snapshots can be restored", m.ID, m.State)
	}
	if err := m.Complete(); err != nil {
		return nil, nil, api.Errorf(api.CodeCorrupt, "%v", err)
	}
	if err := s.healFromCopies(ctx, m); err != nil { // replicate.go: a bad original is replaced by a healthy copy
		return nil, nil, err
	}
	chosen, err := s.chooseCut(ctx, m, req) // recoveryline.go: check the cut, or choose a recovery line
	if err != nil {
		return nil, nil, err
	}
	switch req.Mode {
	case "", api.ModeExact:
	case api.ModeSwarm:
		if chosen.rolledBack() {
			return nil, nil, api.Errorf(api.CodeBadRequest, "restore of %s refused: its recovery line takes containers from older snapshots, which --mode swarm cannot restore yet: restore it in exact mode", m.ID)
		}
		res, err := s.restoreSwarm(ctx, m, req, pk) // swarmrestore.go
		if err == nil {
			err = s.startExcluded(ctx, m) // exclude.go
		}
		return res, nil, err
	default:
		return nil, nil, api.Errorf(api.CodeBadRequest, "unknown restore mode %q (use %s or %s)", req.Mode, api.ModeExact, api.ModeSwarm)
	}
	var nodes []string
	for _, w := range s.live.live() {
		nodes = append(nodes, w.Node)
	}
	targets, err := PlanTargets(chosen.m, req.Targets, nodes, req.OnOriginal)
	if err != nil {
		return nil, nil, err
	}
	if held == nil {
		// One restore, migration or snapshot of a stack at a time, and no rm of the
		// snapshot while it is restored (remove takes the same lock).
		lock, err := s.lockStack(ctx, m.Stack, "restore-"+m.ID)
		if err != nil {
			return nil, nil, err
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = lock.Unlock(uctx)
		}()
		held = lock
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "preflight", Message: "checking the nodes before stopping anything: " + describeTargets(targets)})
	if err := s.preflight(ctx, chosen.m, targets); err != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "refused", Message: err.Error()})
		return nil, nil, err
	}
	start := time.Now()
	var before *store.Manifest // what ran, checkpointed: put back if the restore fails
	if own && !req.DiscardRunning {
		if before, err = s.checkpointRunning(ctx, m, held); err != nil {
			return nil, nil, err
		}
	}
	if before != nil {
		pk = s.newParkedStack(before)
	}
	// The parked containers (the checkpoint's, or a migration's) end once swarm
	// ordered their tasks down (parkedStack), or after the stop when it kills nothing.
	stopped, err = s.stopStack(ctx, m, pk.killFunc())
	if pk != nil {
		if err != nil && len(stopped) == 0 && !pk.wasEnded() {
			// Nothing was stopped: they run on, as before.
			pk.release(ctx)
			if before != nil {
				return nil, nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed (stack %s runs as before; its checkpoint %s is kept): %v", m.ID, m.Stack, before.ID, err)
			}
			return nil, nil, err
		}
		if perr := pk.end(ctx); perr != nil && err == nil {
			err = perr
		}
	}
	if err == nil {
		// What runs of a stack restored earlier in exact mode are standalone containers
		// (its services at 0), listed once: they are removed now (standalone.go) and,
		// should this restore fail, their services start again with as many replicas.
		var byNode map[string][]node.Standalone
		if byNode, err = s.listStandalone(ctx, m.Stack); err == nil {
			if stopped != nil {
				maps.Copy(stopped, standaloneReplicas(byNode, stopped))
			}
			_, err = s.removeListed(ctx, m, byNode)
		} else {
			err = stopWhatRunsErr(m, err)
		}
	}
	if err != nil {
		if before != nil {
			return nil, nil, s.putBack(ctx, m, before, stopped, err)
		}
		if scaleBack && len(stopped) > 0 {
			return nil, nil, s.scaleBack(ctx, m, stopped, err)
		}
		return nil, stopped, err
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: describeTargets(targets)})
	ids, rerr := s.cfg.Restorer.Restore(ctx, chosen.m, targets)
	rec := store.Restore{At: time.Now().UTC(), Targets: targets, OK: rerr == nil, Mode: api.ModeExact}
	chosen.record(&rec, nil)
	if rerr != nil {
		rec.Error = rerr.Error()
	}
	m.Restores = append(m.Restores, rec)
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record restore", "snapshot", m.ID, "err", err)
	}
	if rerr != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restore-failed", Message: rerr.Error()})
		if before != nil {
			return nil, nil, s.putBack(ctx, m, before, stopped, rerr)
		}
		if scaleBack {
			return nil, nil, s.scaleBack(ctx, m, stopped, rerr)
		}
		return nil, stopped, api.Errorf(api.CodeFailed, "restore of %s: %v", m.ID, rerr)
	}
	res = &api.RestoreResult{ID: m.ID, Targets: targets, Containers: ids, TotalMS: time.Since(start).Milliseconds()}
	if before != nil {
		res.Before = before.ID
	}
	chosen.record(nil, res)
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", MS: res.TotalMS})
	return res, stopped, s.startExcluded(ctx, m) // exclude.go
}

// Migrate moves a stack cold: snapshot (containers stopped after their dump), restore
// on the target nodes; if the restore fails, the originals are restored where they
// were (rollback); if that fails too, the stack's services are started again. In exact
// mode the targets are planned before the snapshot, and each moving container's dump
// streams its images to its target while CRIU writes them (the dumping node keeps its
// copy, which the rollback uses); the restore then finds the sets in place.
func (s *Service) Migrate(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error) {
	if err := validMigrateRequest(req); err != nil { // validate.go
		return nil, err
	}
	if (req.To == "") == (req.From == "") {
		return nil, api.Errorf(api.CodeBadRequest, "give exactly one of --to NODE or --from NODE")
	}
	if s.cfg.Restorer == nil {
		return nil, api.Errorf(api.CodeFailed, "migrate is not available: this coordinator has no restorer (the workers' restore primitive is not wired yet)")
	}
	if err := s.migrateNeedsConsistentCut(req.Algorithm); err != nil { // recoveryline.go
		return nil, err
	}
	if err := s.migrateTargetLive(req); err != nil {
		return nil, err
	}
	if err := s.migratePlaceable(ctx, req); err != nil {
		return nil, err
	}
	var stream streamPlan
	// Exact mode plans every target; swarm mode with --to knows the one node swarm may
	// place the tasks on (node.hostname==TO). Swarm mode with --from does not.
	if req.Mode != api.ModeSwarm || req.To != "" {
		stream = func(pre *store.Manifest) map[string]string {
			plan, err := s.migrationPlan(pre, req)
			if err != nil {
				return nil // the plan after the snapshot reports it
			}
			out := map[string]string{}
			for i, c := range pre.Containers {
				t := plan[c.Key()]
				if t == "" || t == c.Node {
					continue
				}
				if addr, ok := s.WorkerAddr(t); ok && addr != "" {
					out[c.Key()] = addr
					// Kept with the manifest's next write: dropStreamed finds the
					// copy there, and rm too if dropping it fails.
					pre.Containers[i].StreamedTo = t
				}
			}
			if len(out) > 0 {
				s.event(ctx, api.Event{ID: pre.ID, Phase: "streaming", Message: fmt.Sprintf("%d containers' images stream to their target nodes while they are dumped", len(out))})
			}
			return out
		}
	}
	// The stack's lock, held from the snapshot to the end of the restore or rollback:
	// no other restore, migration, snapshot or rm of the stack meanwhile.
	lock, err := s.lockStack(ctx, req.Stack, "migrate-"+req.ID)
	if err != nil {
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
	}()
	var (
		m    *store.Manifest
		used map[string]string // the final targets, once the restore succeeded
	)
	// Whatever the outcome, the streamed copies no restore used go (all of them when
	// used is nil: a failed migration).
	defer func() { s.dropStreamed(ctx, m, used) }()
	m, err = s.snapshot(ctx, api.SnapshotRequest{ID: req.ID, Stack: req.Stack, Algorithm: req.Algorithm, Exit: true}, stream, lock)
	if err != nil {
		// An aborted snapshot released every container: they run on as before.
		return &api.MigrateResult{Snapshot: m}, err
	}
	// The containers wait, frozen and locked since their dump: the restore's stop ends
	// them (parkedStack); a restore refused before its stop lets them run on.
	pk := s.newParkedStack(m)
	refused := func(err error) (*api.MigrateResult, error) {
		pk.release(ctx)
		s.event(ctx, api.Event{ID: m.ID, Phase: "refused", Message: "nothing was stopped: the stack runs on as before"})
		var ae *api.Error
		if errors.As(err, &ae) {
			return &api.MigrateResult{Snapshot: m}, api.Errorf(ae.Code, "migration refused before anything was stopped (the stack runs on as before; snapshot %s is kept): %s", m.ID, ae.Message)
		}
		return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed, "migration refused before anything was stopped (the stack runs on as before; snapshot %s is kept): %v", m.ID, err)
	}
	if req.Mode == api.ModeSwarm {
		// Swarm places the tasks: steer it with a constraint (kept on the services).
		c := "node.hostname==" + req.To
		if req.From != "" {
			c = "node.hostname!=" + req.From
		}
		res, _, err := s.restore(ctx, api.RestoreRequest{ID: m.ID, Mode: api.ModeSwarm, Constraints: []string{c}}, false, lock, pk)
		if err != nil {
			if !pk.wasEnded() {
				return refused(err)
			}
			// A failed swarm-native restore leaves the services at 0 (swarmrestore.go).
			return s.rollback(ctx, m, nil, true, err)
		}
		used = res.Targets
		return &api.MigrateResult{Snapshot: m, Restore: res}, nil
	}
	plan, err := s.migrationPlan(m, req)
	if err != nil {
		return refused(err)
	}
	res, stopped, err := s.restore(ctx, api.RestoreRequest{ID: m.ID, Targets: plan, OnOriginal: true}, false, lock, pk)
	if err != nil {
		if !pk.wasEnded() {
			return refused(err)
		}
		return s.rollback(ctx, m, stopped, stopped != nil, err)
	}
	used = plan
	return &api.MigrateResult{Snapshot: m, Restore: res}, nil
}

// migrateTargetLive refuses a migration --to a node without a live worker before
// anything is touched (a migration would otherwise stop the stack first and only then
// find it cannot restore it there).
func (s *Service) migrateTargetLive(req api.MigrateRequest) error {
	if req.To == "" {
		return nil
	}
	var live []string
	for _, w := range s.live.live() {
		if w.Node == req.To {
			return nil
		}
		live = append(live, w.Node)
	}
	sort.Strings(live)
	return api.Errorf(api.CodeNoWorker, "migrate --to %s refused, nothing was changed: node %s has no live worker (nodes with one: %v); start its worker and agent, or pick one of those nodes",
		req.To, req.To, live)
}

// migratePlaceable refuses a swarm-mode migration whose added constraint leaves some
// service of the stack no node with a live worker that its own placement constraints
// allow (e.g. --from NODE of a service pinned to NODE), before anything is touched:
// swarm would leave its tasks pending ("no suitable node") after the stack was stopped.
func (s *Service) migratePlaceable(ctx context.Context, req api.MigrateRequest) error {
	if req.Mode != api.ModeSwarm {
		return nil
	}
	pr, ok := s.cfg.Stopper.(stack.PlacementReader)
	if !ok {
		return nil
	}
	placement, err := pr.Placement(ctx, req.Stack)
	if err != nil {
		return api.Errorf(api.CodeFailed, "migrate refused, nothing was changed: cannot read the placement of stack %s's services: %v", req.Stack, err)
	}
	added := "node.hostname==" + req.To
	if req.From != "" {
		added = "node.hostname!=" + req.From
	}
	var live []string
	for _, w := range s.live.live() {
		live = append(live, w.Node)
	}
	sort.Strings(live)
	var problems []string
	for _, svc := range slices.Sorted(maps.Keys(placement)) {
		own := placement[svc]
		if len(stack.EligibleNodes(live, append(slices.Clone(own), added))) == 0 {
			problems = append(problems, fmt.Sprintf("service %s: its placement constraints %v and %s leave no suitable node (nodes with a live worker: %v)", svc, own, added, live))
		}
	}
	if len(problems) > 0 {
		return api.Errorf(api.CodeBadRequest, "migrate --mode swarm refused, nothing was changed: %s; remove the service's pinning constraint (docker service update --constraint-rm ...), or migrate with --mode exact",
			strings.Join(problems, "; "))
	}
	return nil
}

// migrationPlan picks the target node of every container of m for an exact-mode
// migration: --to NODE moves all to NODE; --from NODE spreads NODE's containers over
// the other live nodes and leaves the others where they are.
func (s *Service) migrationPlan(m *store.Manifest, req api.MigrateRequest) (map[string]string, error) {
	targets := map[string]string{}
	var nodes []string
	for _, w := range s.live.live() {
		if w.Node != req.From {
			nodes = append(nodes, w.Node)
		}
	}
	for _, c := range m.Containers {
		switch {
		case req.To != "":
			targets[c.Key()] = req.To
		case c.Node != req.From:
			targets[c.Key()] = c.Node
		}
	}
	return PlanTargets(m, targets, nodes, false)
}

// dropStreamed removes the image sets a migration streamed to target nodes (the
// manifest's StreamedTo) that no restore consumed: all of them after a failure (used
// nil), else those on a node other than the one finally used. Best effort: what cannot
// be dropped is logged, and 'swarmckpt rm' of the snapshot drops it later.
func (s *Service) dropStreamed(ctx context.Context, m *store.Manifest, used map[string]string) {
	if m == nil || m.State == store.StateAborted {
		return // an aborted snapshot's sets, streamed copies included, went with collectAborted
	}
	var sets []setRef
	for _, c := range m.Containers {
		if c.StreamedTo != "" && (used == nil || used[c.Key()] != c.StreamedTo) {
			sets = append(sets, setRef{c.StreamedTo, node.SetID(m.ID, c.Key())})
		}
	}
	if len(sets) == 0 {
		return
	}
	dropped, left := s.dropSets(context.WithoutCancel(ctx), sets)
	s.log.Info("dropped the streamed copies no restore used", "snapshot", m.ID, "dropped", len(dropped), "left", len(left))
	for _, l := range left {
		s.log.Warn("streamed copy of a migration left on its target node; 'swarmckpt rm' of the snapshot deletes it once the node answers", "snapshot", m.ID, "set", l)
	}
}

// rollback restores a failed migration's originals where they were. wasStopped says
// whether the stack's services were already stopped (stopped: their replicas); if
// not, they are stopped first (exact mode), so that no swarm task holds the
// originals' addresses. If the rollback fails, the services are started again.
func (s *Service) rollback(ctx context.Context, m *store.Manifest, stopped map[string]uint64, wasStopped bool, cause error) (*api.MigrateResult, error) {
	orig := map[string]string{}
	for _, c := range m.Containers {
		orig[c.Key()] = c.Node
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "rollback", Message: cause.Error()})
	if !wasStopped {
		var err error
		if stopped, err = s.stopStack(ctx, m, nil); err != nil {
			return &api.MigrateResult{Snapshot: m}, s.scaleBack(ctx, m, stopped, fmt.Errorf("migration failed (%v) and the rollback could not stop the stack: %w", cause, err))
		}
	}
	if _, err := s.cfg.Restorer.Restore(ctx, m, orig); err != nil {
		err = fmt.Errorf("migration failed (%v) and the rollback onto the original nodes failed too (%w); to restore the snapshot by hand: 'swarmckpt restore %s --on-original'", cause, err, m.ID)
		return &api.MigrateResult{Snapshot: m}, s.scaleBack(ctx, m, stopped, err)
	}
	return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed, "migration failed, originals restored where they were: %v", cause)
}

// remove deletes a snapshot's image sets from every node that holds one (best effort:
// a node that is down is reported in the result's Warnings and never blocks the
// removal), then its manifest. Sets still used by another snapshot are kept.
func (s *Service) remove(ctx context.Context, id string) (*api.RemoveResult, error) {
	m, err := s.cfg.Store.Get(ctx, id)
	if errors.Is(err, store.ErrCorrupt) {
		// Its image sets cannot be listed: remove the manifest only.
		if err := s.cfg.Store.Delete(ctx, id); err != nil {
			return nil, storeErr(err)
		}
		return &api.RemoveResult{ID: id, Warnings: []string{fmt.Sprintf("manifest of %s was corrupt: its image sets (%s.*) were not collected, delete them by hand", id, id)}}, nil
	}
	if err != nil {
		return nil, storeErr(err)
	}
	// Not while the stack is restored, migrated or snapshotted (a restore reads the
	// sets; a snapshot of minimal may reuse them).
	lock, err := s.lockStack(ctx, m.Stack, "rm-"+id)
	if err != nil {
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
	}()
	res := &api.RemoveResult{ID: id}
	used, err := s.inUseElsewhere(ctx, m)
	if err != nil {
		return nil, storeErr(err)
	}
	var sets []setRef
	for _, r := range setsOf(m) {
		if used[r.set] {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s: kept, a later snapshot reuses it", r.node, r.set))
			continue
		}
		sets = append(sets, r)
	}
	dropped, left := s.dropSets(ctx, sets)
	res.ImagesRemoved = wholeSets(sets, dropped)
	res.Warnings = append(res.Warnings, left...)
	if err := s.cfg.Store.Delete(ctx, id); err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

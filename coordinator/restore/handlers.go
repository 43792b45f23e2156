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
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Restore restores a committed snapshot on target nodes (the request is validated:
// coordinator/validate.go). In exact mode nothing is changed until the nodes said
// the restore can run (preflight); if it fails after the stack was stopped, the
// checkpoint of what ran is put back (putback.go).
func (s *Restores) Restore(ctx context.Context, req api.RestoreRequest) (*api.RestoreResult, error) {
	res, _, err := s.restore(ctx, req, true, nil, nil, nil)
	return res, err
}

// restore serves Restore. stopped are the replicas of the services it scaled to 0
// (nil when it stopped nothing or cannot tell). own says whether this is a restore of
// its own (Restore), which checkpoints what runs of the stack before it replaces it
// (so that a failure puts it back with its state, unless req.DiscardRunning) and
// starts the services again when even that fails; Migrate passes false (its rollback
// restores the originals from its own snapshot), the stack lock it holds and its
// snapshot's parked containers (ended by the stop, parkedStack) and its journal j (a
// restore of its own journals itself: opjournal.go).
func (s *Restores) restore(ctx context.Context, req api.RestoreRequest, own bool, held store.Lock, pk *parkedStack, j *opJournal) (res *api.RestoreResult, stopped map[string]uint64, err error) {
	scaleBack := own
	m, err := s.cfg.Store.Get(ctx, req.ID)
	if err != nil {
		return nil, nil, StoreErr(err)
	}
	if s.restorer() == nil {
		return nil, nil, api.Errorf(api.CodeFailed, "restore is not available: this coordinator has no restorer (the workers' restore primitive is not wired yet)")
	}
	if m.State != store.StateCommitted {
		return nil, nil, api.Errorf(api.CodeBadRequest, "snapshot %s is %s: only committed snapshots can be restored", m.ID, m.State)
	}
	if m.Partial {
		return nil, nil, api.Errorf(api.CodeBadRequest, "snapshot %s holds only the %d containers a partial migration moved, not the stack %s: restoring it would stop the whole stack and bring back only those; take a snapshot of the stack (swarmckpt snapshot %s) and restore that",
			m.ID, len(m.Containers), m.Stack, m.Stack)
	}
	if err := m.Complete(); err != nil {
		return nil, nil, api.Errorf(api.CodeCorrupt, "%v", err)
	}
	if own && PagesNotVerified(m) != "" {
		// A direct migration's sets whose page digests are not in the record yet
		// (pages.go): fetched from their nodes first (waiting for their hash), or
		// refused.
		if m, err = FillPages(ctx, s.cfg.Store, s.nodes, m.ID, pagesWait); m == nil {
			return nil, nil, StoreErr(err)
		}
		if why := PagesNotVerified(m); why != "" {
			return nil, nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed: the record of its images is incomplete: %s (page digests come from the node holding the set once its worker hashed them: start that node's worker and agent, then restore again; a set that can never be verified cannot be restored: restore another snapshot)", m.ID, why)
		}
	}
	if err := s.heal(ctx, m); err != nil { // copies.go: a bad original is replaced by a healthy replica
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
		res, err := s.restoreSwarm(ctx, m, req, own, pk, j) // restoreswarm.go, coordinator/restore/swarm.go
		if err == nil {
			err = s.startExcluded(ctx, m) // copies.go: swarmckpt.exclude
		}
		return res, nil, err
	default:
		return nil, nil, api.Errorf(api.CodeBadRequest, "unknown restore mode %q (use %s or %s)", req.Mode, api.ModeExact, api.ModeSwarm)
	}
	var nodes []string
	for _, w := range s.live() {
		nodes = append(nodes, w.Node)
	}
	targets, err := PlanTargets(chosen.m, req.Targets, nodes, req.OnOriginal)
	if err != nil {
		return nil, nil, err
	}
	var owner string // the lock's, naming the journal
	if held == nil {
		// One restore, migration or snapshot of a stack at a time, and no rm of the
		// snapshot while it is restored (remove takes the same lock).
		var lock store.Lock
		lock, owner, err = s.lockStackAs(ctx, m.Stack, "restore-"+m.ID)
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
	s.event(ctx, api.Event{ID: m.ID, Phase: "preflight", Message: "checking the nodes before stopping anything: " + DescribeTargets(targets)})
	// A migration's own restore (right after its commit) does not re-hash the sets
	// whose pages its direct dumps left for their targets to hash after the restore:
	// the commit checked them as received (by their files' stamps), and a re-hash
	// here would wait for that hash, on the migration's critical path (pages.go).
	var hashed map[string]bool
	if !own && pk != nil {
		for k := range VerifiedAtCommit(chosen.m) {
			if c := containerOf(chosen.m, k); c != nil && c.Images.PagesPending {
				if hashed == nil {
					hashed = map[string]bool{}
				}
				hashed[k] = true
			}
		}
	}
	// A restore that stops the stack itself (own) waits for its targets' keepers
	// before the stop (prepare).
	if err := s.preflightSkip(ctx, chosen.m, targets, hashed, own); err != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "refused", Message: err.Error()})
		return nil, nil, err
	}
	start := time.Now()
	var before *store.Manifest // what ran, checkpointed: put back if the restore fails
	if own {
		// Journaled from here (opjournal.go): the checkpoint's id is chosen before it
		// is taken, so that a coordinator started after a crash finds its parked
		// containers.
		checkpoint := ""
		if !req.DiscardRunning {
			checkpoint = s.cfg.NewID(m.Stack, time.Now())
		}
		if j, err = s.beginOp(ctx, owner, "restore", m.Stack, m.ID, checkpoint, targets); err != nil {
			return nil, nil, err
		}
		defer j.end(ctx)
		if checkpoint != "" {
			if before, err = s.checkpointRunning(ctx, m, held, checkpoint); err != nil {
				return nil, nil, err
			}
		}
	}
	if before != nil {
		pk = s.newParkedStack(before)
	}
	// The stop begins: from here a coordinator started after a crash rolls the
	// restore back (Decide). Without the journal it does not begin.
	if err := j.step(ctx, StepStopping, func(op *store.Operation) {
		op.Targets, op.Mode = targets, api.ModeExact
		if own && before == nil {
			op.Parked = "" // nothing ran
		}
	}); err != nil {
		pk.release(ctx)
		return nil, nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed (stack %s runs as before): cannot journal its stop in the store: %v; check that etcd answers, then try again", m.ID, m.Stack, err)
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
			return nil, nil, s.putBack(ctx, m, before, targets, stopped, err)
		}
		if scaleBack && len(stopped) > 0 {
			return nil, nil, s.scaleBack(ctx, m, stopped, err)
		}
		return nil, stopped, err
	}
	_ = j.step(ctx, StepRestoring, func(op *store.Operation) { op.Stopped = stopped })
	s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: DescribeTargets(targets)})
	ids, rerr := s.restorer().Restore(ctx, chosen.m, targets)
	if rerr == nil {
		_ = j.step(ctx, StepRestored, nil)
	}
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
			return nil, nil, s.putBack(ctx, m, before, targets, stopped, rerr)
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
	return res, stopped, s.startExcluded(ctx, m) // copies.go: swarmckpt.exclude
}

// Migrate moves a stack cold: snapshot (containers stopped after their dump), restore
// on the target nodes; if the restore fails, the originals are restored where they
// were (rollback; swarm mode: as swarm tasks, swarmRollback); if that fails too, the
// stack's services are started again. In exact
// mode the targets are planned before the snapshot, and each moving container's dump
// streams its images to its target while CRIU writes them (the dumping node keeps its
// copy, which the rollback uses); the restore then finds the sets in place. With
// --copy direct (copymode.go) the dumps send the pages straight into the targets and
// keep no copy: the target's set is the snapshot's only one (Images.Node), restored in
// place and kept, and the rollback sends it back from there (HomeOf).
// The request is validated (coordinator/validate.go).
func (s *Restores) Migrate(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error) {
	var copyMode string
	res, err := s.migrate(ctx, req, &copyMode)
	if res != nil {
		res.Copy = copyMode
	}
	return res, err
}

// migrate serves Migrate; *copyMode is set to the copy mode once resolved.
func (s *Restores) migrate(ctx context.Context, req api.MigrateRequest, copyMode *string) (*api.MigrateResult, error) {
	if (req.To == "") == (req.From == "") {
		return nil, api.Errorf(api.CodeBadRequest, "give exactly one of --to NODE or --from NODE")
	}
	if s.restorer() == nil {
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
	mode, explicit, err := s.migrationCopy(ctx, req) // copymode.go
	if err != nil {
		return nil, err
	}
	*copyMode = mode
	if !explicit && mode != api.CopyStreamed {
		s.log.Info("migration copy mode from the stack's swarmckpt.migration label", "stack", req.Stack, "copy", mode)
	}
	if !req.WholeStack && req.Mode == api.ModeSwarm && s.cfg.MoveHeld != nil && !s.hasStandalone(ctx, req.Stack) {
		return s.moveHeld(ctx, req, mode, explicit, copyMode)
	}
	if !req.WholeStack && req.Mode != api.ModeSwarm {
		if req.ID == "" {
			req.ID = s.cfg.NewID(req.Stack, time.Now())
		}
		return s.migratePartial(ctx, req, mode, explicit, copyMode) // partial.go: only the moving containers
	}
	if mode == api.CopyPostCopy {
		// Whole-stack and swarm mode stop the stack's services, which would end a
		// source that still serves its pages.
		if explicit {
			return nil, api.Errorf(api.CodeBadRequest, "migrate --copy post-copy refused, nothing was changed: post-copy moves only some containers of a stack, in exact mode (the whole stack's stop would end a source that still serves its pages); drop --whole-stack, or migrate with --copy direct")
		}
		mode, *copyMode = api.CopyDirect, api.CopyDirect
		s.event(ctx, api.Event{ID: req.ID, Phase: "warning", Message: "the stack's swarmckpt.migration label asks for post-copy, which moves only some containers in exact mode: migrating direct"})
	}
	if err := s.wholeStackMoves(ctx, req); err != nil {
		return nil, err
	}
	var stream StreamPlan
	// Exact mode plans every target; swarm mode with --to knows the one node swarm may
	// place the tasks on (node.hostname==TO). Swarm mode with --from does not.
	if req.Mode != api.ModeSwarm || req.To != "" {
		stream = func(pre *store.Manifest) (map[string]string, error) {
			plan, err := s.migrationPlan(pre, req)
			if err != nil {
				return nil, nil // the plan after the snapshot reports it
			}
			return s.streamTo(ctx, pre, plan, mode, explicit, copyMode)
		}
	}
	// The stack's lock, held from the snapshot to the end of the restore or rollback:
	// no other restore, migration, snapshot or rm of the stack meanwhile.
	if req.ID == "" {
		req.ID = s.cfg.NewID(req.Stack, time.Now()) // named before it is taken: the journal names it
	}
	lock, j, release, err := s.lockMigration(ctx, req)
	if err != nil {
		return nil, err
	}
	defer release()
	var (
		m    *store.Manifest
		used map[string]string // the final targets, once the restore succeeded
	)
	// Whatever the outcome, the streamed copies no restore used go (all of them when
	// used is nil: a failed migration).
	defer func() { s.dropStreamed(ctx, m, used) }()
	m, err = s.cfg.Host.Snapshot(ctx, api.SnapshotRequest{ID: req.ID, Stack: req.Stack, Algorithm: req.Algorithm, Exit: true, CarryVolumes: req.CarryVolumes}, stream, lock)
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
		res, _, err := s.restore(ctx, api.RestoreRequest{ID: m.ID, Mode: api.ModeSwarm, Constraints: []string{c}}, false, lock, pk, j)
		if err != nil {
			if !pk.wasEnded() {
				return refused(err)
			}
			// A failed swarm-native restore leaves the services at 0 (restore/swarm.go).
			return s.swarmRollback(ctx, m, j, err)
		}
		used = res.Targets
		return &api.MigrateResult{Snapshot: m, Restore: res}, nil
	}
	plan, err := s.migrationPlan(m, req)
	if err != nil {
		return refused(err)
	}
	res, stopped, err := s.restore(ctx, api.RestoreRequest{ID: m.ID, Targets: plan, OnOriginal: true}, false, lock, pk, j)
	if err != nil {
		if !pk.wasEnded() {
			return refused(err)
		}
		return s.rollback(ctx, m, plan, stopped, stopped != nil, err)
	}
	used = plan
	return &api.MigrateResult{Snapshot: m, Restore: res}, nil
}

// migrateTargetLive refuses a migration --to a node without a live worker before
// anything is touched (a migration would otherwise stop the stack first and only then
// find it cannot restore it there).
func (s *Restores) migrateTargetLive(req api.MigrateRequest) error {
	if req.To == "" {
		return nil
	}
	var live []string
	for _, w := range s.live() {
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
func (s *Restores) migratePlaceable(ctx context.Context, req api.MigrateRequest) error {
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
	for _, w := range s.live() {
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
func (s *Restores) migrationPlan(m *store.Manifest, req api.MigrateRequest) (map[string]string, error) {
	targets := map[string]string{}
	var nodes []string
	for _, w := range s.live() {
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
func (s *Restores) dropStreamed(ctx context.Context, m *store.Manifest, used map[string]string) {
	if m == nil || m.State == store.StateAborted {
		return // an aborted snapshot's sets, streamed copies included, went with collectAborted
	}
	var sets []SetRef
	for _, c := range m.Containers {
		if c.Direct {
			continue // the snapshot's only copy (a failed migration's rollback restores from it)
		}
		if c.StreamedTo != "" && (used == nil || used[c.Key()] != c.StreamedTo) {
			sets = append(sets, SetRef{c.StreamedTo, node.SetID(m.ID, c.Key())})
		}
	}
	if len(sets) == 0 {
		return
	}
	dropped, left := s.cfg.Host.DropSets(context.WithoutCancel(ctx), sets)
	s.log.Info("dropped the streamed copies no restore used", "snapshot", m.ID, "dropped", len(dropped), "left", len(left))
	for _, l := range left {
		s.log.Warn("streamed copy of a migration left on its target node; 'swarmckpt rm' of the snapshot deletes it once the node answers", "snapshot", m.ID, "set", l)
	}
}

// rollback restores a failed migration's originals where they were (putBackOriginals:
// over whatever the failed restore onto targets left). wasStopped says whether the
// stack's services were already stopped (stopped: their replicas); if not, they are
// stopped first (exact mode), so that no swarm task holds the originals' addresses. If
// the rollback fails, the services are started again.
func (s *Restores) rollback(ctx context.Context, m *store.Manifest, targets map[string]string, stopped map[string]uint64, wasStopped bool, cause error) (*api.MigrateResult, error) {
	s.event(ctx, api.Event{ID: m.ID, Phase: "rollback", Message: cause.Error()})
	if !wasStopped {
		var err error
		if stopped, err = s.stopStack(ctx, m, nil); err != nil {
			return &api.MigrateResult{Snapshot: m}, s.scaleBack(ctx, m, stopped, fmt.Errorf("migration failed (%v) and the rollback could not stop the stack: %w", cause, err))
		}
	}
	note, err := s.putBackOriginals(ctx, m, m, targets)
	if err != nil {
		err = fmt.Errorf("migration failed (%v) and the rollback onto the original nodes failed too (%w); to restore the snapshot by hand: 'swarmckpt restore %s --on-original'", cause, err, m.ID)
		return &api.MigrateResult{Snapshot: m}, s.scaleBack(ctx, m, stopped, err)
	}
	return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed, "migration failed, originals restored where they were%s: %v", withNote(note), cause)
}

// swarmRollback rolls back a swarm-mode migration whose restore failed with cause
// after the stop (the services at 0, its placements and constraints taken back): its
// snapshot goes back as swarm tasks where they ran (swarmPutBack), the services at
// the replicas they had, every task from its container's checkpoint. Failing that,
// the originals are restored where they were as standalone containers (rollback), and
// failing that too, the services are started again at those replicas, fresh.
func (s *Restores) swarmRollback(ctx context.Context, m *store.Manifest, j *opJournal, cause error) (*api.MigrateResult, error) {
	s.event(ctx, api.Event{ID: m.ID, Phase: "rollback", Message: cause.Error()})
	err := s.swarmPutBack(ctx, m, j)
	if err == nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: "the stack's services run again at the replicas they had, with their state, from " + m.ID})
		return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed, "migration failed, originals restored where they were, as swarm tasks: the stack's services run again at the replicas they had, with their state (from snapshot %s): %v", m.ID, cause)
	}
	s.log.Warn("rollback: putting the migration's snapshot back as swarm tasks failed: putting it back on its original nodes as standalone containers", "snapshot", m.ID, "err", err)
	return s.rollback(ctx, m, nil, s.replicasBefore(&store.Operation{}, nil, m), true,
		fmt.Errorf("%w (and putting %s back as swarm tasks failed: %v)", cause, m.ID, err))
}

// streamTo marks the containers of pre that plan moves to another node as streamed
// (or, --copy direct, dumped straight) to their target and returns the targets'
// worker addresses by container key: the snapshot's stream plan of a migration. Every
// node asked for a direct dump or a held set must announce it (copyfeatures.go): an
// explicit --copy is refused otherwise, a label's falls back (post-copy to direct
// where that can apply, else streamed; *copyMode says which).
func (s *Restores) streamTo(ctx context.Context, pre *store.Manifest, plan map[string]string, mode string, explicit bool, copyMode *string) (map[string]string, error) {
	direct := mode == api.CopyDirect
	out, moving := map[string]string{}, map[string]string{}
	for i, c := range pre.Containers {
		t := plan[c.Key()]
		if t == "" || t == c.Node {
			continue
		}
		if addr, ok := s.WorkerAddr(t); ok && addr != "" {
			out[c.Key()] = addr
			moving[c.Key()] = t
			// Kept with the manifest's next write: dropStreamed finds the
			// copy there, and rm too if dropping it fails. Direct: the
			// only copy is there (Images.Node names it once dumped).
			pre.Containers[i].StreamedTo = t
			pre.Containers[i].Direct = direct
		}
	}
	// Every node asked for a direct dump or a held set must announce it
	// (copyfeatures.go): an older worker would end a held container.
	if err := copyGate(s.live(), mode, pre, moving); err != nil {
		if explicit {
			return nil, err
		}
		// A label's choice that cannot apply: post-copy falls back to direct where
		// that can, else (and direct) to streamed.
		fallback := api.CopyStreamed
		if mode == api.CopyPostCopy && copyGate(s.live(), api.CopyDirect, pre, moving) == nil {
			fallback = api.CopyDirect
		}
		s.event(ctx, api.Event{ID: pre.ID, Phase: "warning", Message: fmt.Sprintf("the stack's swarmckpt.migration label asks for %s, which cannot apply (%v): migrating %s", mode, err, fallback)})
		direct = fallback == api.CopyDirect
		for i := range pre.Containers {
			pre.Containers[i].Direct = direct && pre.Containers[i].StreamedTo != ""
		}
		mode, *copyMode = fallback, fallback
	}
	if mode == api.CopyPreCopy && len(moving) > 0 {
		// Pre-copy (precopy.go): the pre-dumps run now, while the containers run;
		// their dumps stream as for streamed, taking the pre-dumps along.
		if err := s.preCopy(ctx, pre, moving, out); err != nil {
			if explicit {
				return nil, err
			}
			s.event(ctx, api.Event{ID: pre.ID, Phase: "warning", Message: fmt.Sprintf("the stack's swarmckpt.migration label asks for pre-copy, which failed (%v): migrating streamed", err)})
			*copyMode = api.CopyStreamed
			return out, nil
		}
		s.event(ctx, api.Event{ID: pre.ID, Phase: "streaming", Message: fmt.Sprintf("%d containers' images, pre-dumps included, stream to their target nodes while they are dumped", len(out))})
		return out, nil
	}
	if mode == api.CopyPostCopy {
		// Post-copy: the set (no pages) stays on the source, which serves the
		// pages to the restore; nothing streams. Standalone containers only: a
		// moved swarm task's service would have to be scaled down while its
		// container still serves pages.
		for i, c := range pre.Containers {
			if _, ok := moving[c.Key()]; !ok {
				continue
			}
			if c.TaskID != "" && !explicit {
				s.event(ctx, api.Event{ID: pre.ID, Phase: "warning", Message: fmt.Sprintf("the stack's swarmckpt.migration label asks for post-copy, which moves standalone containers only (%s is a swarm task): migrating direct", c.Key())})
				*copyMode = api.CopyDirect
				return s.streamTo(ctx, pre, plan, api.CopyDirect, false, copyMode)
			}
			if c.TaskID != "" {
				return nil, api.Errorf(api.CodeBadRequest, "migrate --copy post-copy refused, nothing was changed: %s is a swarm task, and post-copy moves standalone containers only (the task's service would be scaled down while its container still serves pages); migrate it with --copy direct or --copy streamed", c.Key())
			}
			pre.Containers[i].StreamedTo, pre.Containers[i].Direct, pre.Containers[i].PostCopy = "", false, true
			delete(out, c.Key())
		}
		s.event(ctx, api.Event{ID: pre.ID, Phase: "streaming", Message: fmt.Sprintf("%d containers are dumped post-copy (--copy post-copy: they run on their targets before their memory arrives, fetched from the source, which must stay up until the last page)", len(moving))})
		return out, nil
	}
	switch {
	case len(out) > 0 && direct:
		s.event(ctx, api.Event{ID: pre.ID, Phase: "streaming", Message: fmt.Sprintf("%d containers are dumped straight into their target nodes (--copy direct: no copy stays on the dumping node)", len(out))})
	case len(out) > 0:
		s.event(ctx, api.Event{ID: pre.ID, Phase: "streaming", Message: fmt.Sprintf("%d containers' images stream to their target nodes while they are dumped", len(out))})
	}
	return out, nil
}

// lockMigration takes the stack's lock for migration req, held from its snapshot to the
// end of its restore or rollback (no other restore, migration, snapshot or rm of the
// stack meanwhile), and begins its journal (opjournal.go): from there the snapshot's
// containers park after their dump, and a coordinator started after a crash releases
// them or puts them back. release ends the journal, then unlocks.
func (s *Restores) lockMigration(ctx context.Context, req api.MigrateRequest) (store.Lock, *opJournal, func(), error) {
	lock, owner, err := s.lockStackAs(ctx, req.Stack, "migrate-"+req.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
	}
	j, err := s.beginOp(ctx, owner, "migrate", req.Stack, req.ID, req.ID, nil)
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return lock, j, func() { j.end(ctx); unlock() }, nil
}

// hasStandalone reports whether stack runs standalone containers (restored in exact
// mode): a swarm-mode migration moves the whole stack then, which brings them back
// into swarm as tasks. A stack that cannot be resolved has none known.
func (s *Restores) hasStandalone(ctx context.Context, stackName string) bool {
	if s.cfg.Resolver == nil {
		return false
	}
	st, err := s.cfg.Resolver.Resolve(ctx, stackName)
	if err != nil {
		return false
	}
	for _, c := range st.Containers {
		if c.State != "" {
			return true
		}
	}
	return false
}

// moveHeld serves a swarm-mode migration of only the moving tasks through
// Config.MoveHeld, under the stack's lock: each is checkpointed by the drain hold when
// swarm stops it, its set sent to its replacement's node (streamed) or, copy direct,
// dumped straight into it (the set's only copy is the target's). Post-copy cannot
// apply (swarm starts the replacement only once the held container has ended, and a
// post-copy restore fetches its pages from it): refused when asked with --copy, a
// label's falls back to direct; pre-copy's label falls back to streamed.
func (s *Restores) moveHeld(ctx context.Context, req api.MigrateRequest, mode string, explicit bool, copyMode *string) (*api.MigrateResult, error) {
	if req.ID == "" {
		req.ID = s.cfg.NewID(req.Stack, time.Now())
	}
	warn := func(msg string) { s.event(ctx, api.Event{ID: req.ID, Phase: "warning", Message: msg}) }
	switch mode {
	case api.CopyStreamed:
	case api.CopyPostCopy, api.CopyDirect:
		if mode == api.CopyPostCopy {
			if explicit {
				return nil, api.Errorf(api.CodeBadRequest, "migrate --copy post-copy refused, nothing was changed: a swarm-mode migration of only the moving tasks checkpoints each task when swarm stops it (the drain hold), and swarm starts the replacement only once that container has ended (or a minute later), while a post-copy restore fetches its pages from it until the last one: the pages not yet fetched would be lost (docs/drain.md \"Copy modes of the drain hold\"); use --copy direct (least downtime here), or --mode exact for post-copy")
			}
			warn("the stack's swarmckpt.migration label asks for post-copy, which cannot apply to a task moved by the drain hold (swarm ends the source before the replacement starts): copying direct where the nodes allow")
			mode = api.CopyDirect
		}
		if err := s.heldDirectGate(req); err != nil {
			if explicit {
				return nil, err
			}
			warn(fmt.Sprintf("the stack's swarmckpt.migration label asks for direct, which cannot apply (%v): copying streamed", err))
			mode = api.CopyStreamed
		}
	default:
		if explicit {
			return nil, api.Errorf(api.CodeBadRequest, "migrate --copy %s refused, nothing was changed: a swarm-mode migration of only the moving tasks copies streamed or direct; use one of those, or --mode exact", mode)
		}
		warn(fmt.Sprintf("the stack's swarmckpt.migration label asks for %s; a swarm-mode migration of only the moving tasks copies streamed or direct: copying streamed", mode))
		mode = api.CopyStreamed
	}
	*copyMode, req.Copy = mode, mode
	_, _, unlock, err := s.lockStackUntil(ctx, req.Stack, "migrate-"+req.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.cfg.MoveHeld(ctx, req)
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A partial migration (the default of migrate in exact mode) moves only the
// containers that must move: those on --from NODE, or those not on --to NODE. They
// alone are snapshotted (dumped, then parked: frozen and network-locked), stopped and
// restored on their targets as standalone containers on their own addresses; the
// stack's other containers run on untouched, never frozen (a migration is not a
// rollback: it needs no global cut). The staying peers' connections to a moved
// container see a pause: their packets to its address go unanswered until it runs
// again on its target, with its sockets. A moved swarm task leaves swarm's hands: its
// service is scaled down by the slots moved, once swarm saw their tasks end (swarm
// then removes the slots whose task is not running, not the running ones). On
// failure the moved containers are put back on their original nodes, with their
// state (and, if even that fails, their services are scaled back up, fresh).

// partialWait bounds each wait on swarm during a partial migration's stop.
const partialWait = 30 * time.Second

// MoveOnly returns the partial migration's moving containers of st (SERVICE.SLOT,
// sorted): those on req.From, or those not on req.To. A function the drain of a node
// can call (MigrateRequest{From: NODE}).
func MoveOnly(st *stack.Stack, req api.MigrateRequest) []string {
	var out []string
	for _, c := range st.Containers {
		if req.From != "" && c.Node == req.From || req.To != "" && c.Node != req.To {
			out = append(out, c.Key())
		}
	}
	sort.Strings(out)
	return out
}

// partialPlan resolves the stack and chooses the moving containers and their targets
// (SpreadTargets): refused (nothing changed) when nothing is to move or no target
// fits. It returns the resolved stack too.
func (s *Restores) partialPlan(ctx context.Context, req api.MigrateRequest) (*stack.Stack, map[string]string, error) {
	if s.cfg.Resolver == nil {
		return nil, nil, api.Errorf(api.CodeFailed, "partial migration is not available: this coordinator resolves no stacks; use --whole-stack")
	}
	st, err := s.cfg.Resolver.Resolve(ctx, req.Stack)
	if err != nil {
		if errors.Is(err, stack.ErrNotFound) {
			return nil, nil, api.Errorf(api.CodeNotFound, "%v", err)
		}
		return nil, nil, api.Errorf(api.CodeFailed, "resolve stack %s: %v", req.Stack, err)
	}
	targets, err := s.spreadFor(ctx, st, MoveOnly(st, req), req)
	if err != nil {
		return nil, nil, err
	}
	if len(targets) == 0 {
		where := "on node " + req.From
		if req.To != "" {
			where = "elsewhere than on node " + req.To
		}
		return nil, nil, api.Errorf(api.CodeBadRequest, "migrate of stack %s refused, nothing was changed: none of its %d containers runs %s: nothing to move", req.Stack, len(st.Containers), where)
	}
	return st, targets, nil
}

// wholeStackMoves refuses (CodeBadRequest, nothing changed) a --whole-stack migration
// that would move no container: --from a node where none of the stack's containers
// runs, or --to the node where all of them run. It would stop the whole stack and
// restore every container where it ran (fault seeds 3035, 3188: 2-6 s of downtime
// for nothing), where a partial migration refuses the same request (partialPlan). A
// coordinator that resolves no stacks cannot tell and lets it run.
func (s *Restores) wholeStackMoves(ctx context.Context, req api.MigrateRequest) error {
	if s.cfg.Resolver == nil {
		return nil
	}
	st, err := s.cfg.Resolver.Resolve(ctx, req.Stack)
	if err != nil || len(st.Containers) == 0 || len(MoveOnly(st, req)) > 0 {
		return nil // the snapshot reports a stack it cannot take
	}
	where := "on node " + req.From
	if req.To != "" {
		where = "elsewhere than on node " + req.To
	}
	return api.Errorf(api.CodeBadRequest, "migrate --whole-stack of stack %s refused, nothing was changed: none of its %d containers runs %s: nothing to move", req.Stack, len(st.Containers), where)
}

// spreadFor is SpreadTargets over st for the moving containers only.
func (s *Restores) spreadFor(ctx context.Context, st *stack.Stack, only []string, req api.MigrateRequest) (map[string]string, error) {
	var moving, staying []Placed
	for _, c := range st.Containers {
		p := Placed{Key: c.Key(), Service: c.Service, Node: c.Node}
		if slices.Contains(only, c.Key()) {
			moving = append(moving, p)
		} else {
			staying = append(staying, p)
		}
	}
	var nodes []string
	for _, w := range s.live() {
		if req.To != "" && w.Node == req.To || req.From != "" && w.Node != req.From {
			nodes = append(nodes, w.Node)
		}
	}
	var constraints map[string][]string
	if pr, ok := s.cfg.Stopper.(stack.PlacementReader); ok {
		var err error
		if constraints, err = pr.Placement(ctx, st.Name); err != nil {
			return nil, api.Errorf(api.CodeFailed, "migrate refused, nothing was changed: cannot read the placement of stack %s's services: %v", st.Name, err)
		}
	}
	if len(moving) == 0 {
		return nil, nil
	}
	if len(nodes) == 0 {
		return nil, api.Errorf(api.CodeNoWorker, "migrate refused, nothing was changed: no node with a live worker to move to (the nodes other than %s have none): start a worker and agent on another node", req.From)
	}
	return SpreadTargets(moving, staying, nodes, constraints)
}

// migratePartial serves Migrate for a partial move (exact mode, not WholeStack).
// mode is the resolved copy mode, explicit whether --copy named it (streamTo).
func (s *Restores) migratePartial(ctx context.Context, req api.MigrateRequest, mode string, explicit bool, copyMode *string) (res *api.MigrateResult, err error) {
	t0 := time.Now()
	var steps []api.StepTime
	step := func(name string, since time.Time) time.Time {
		now := time.Now()
		steps = append(steps, api.StepTime{Step: name, MS: now.Sub(since).Milliseconds()})
		return now
	}
	defer func() {
		if res != nil {
			res.Steps = steps
		}
	}()
	st, plan, err := s.partialPlan(ctx, req)
	if err != nil {
		return nil, err
	}
	only := slices.Sorted(maps.Keys(plan))
	s.event(ctx, api.Event{ID: req.ID, Phase: "partial", Message: fmt.Sprintf("only %d of the stack's %d containers move (%s); the others run on untouched (--whole-stack moves them all)",
		len(only), len(st.Containers), DescribeTargets(plan))})
	stream := func(pre *store.Manifest) (map[string]string, error) {
		return s.streamTo(ctx, pre, plan, mode, explicit, copyMode)
	}
	lock, j, release, err := s.lockMigration(ctx, req) // handlers.go
	if err != nil {
		return nil, err
	}
	defer release()
	var (
		m    *store.Manifest
		used map[string]string
	)
	defer func() { s.dropStreamed(ctx, m, used) }()
	t := step("plan", t0)
	s.prepareEarly(ctx, req.ID, st, plan)
	// Deferred after the lock's release: runs before it, once the migration committed
	// (its post-copy sources served their last page) or rolled back.
	defer s.releasePrepared(ctx, req.ID, movingOf(st, plan), plan)
	t = step("prepare", t)
	m, err = s.cfg.Host.Snapshot(ctx, api.SnapshotRequest{ID: req.ID, Stack: req.Stack, Algorithm: req.Algorithm, Exit: true, CarryVolumes: req.CarryVolumes, Only: only}, stream, lock)
	t = step("snapshot", t)
	if err != nil {
		return &api.MigrateResult{Snapshot: m}, err
	}
	steps = append(steps, api.StepTime{Step: "dump", MS: longestDump(m)})
	pk := s.newParkedStack(m)
	refused := func(err error) (*api.MigrateResult, error) {
		pk.release(ctx)
		s.event(ctx, api.Event{ID: m.ID, Phase: "refused", Message: "nothing was stopped: the moving containers run on as before"})
		var ae *api.Error
		if errors.As(err, &ae) {
			return &api.MigrateResult{Snapshot: m}, api.Errorf(ae.Code, "migration refused before anything was stopped (the stack runs on as before; snapshot %s is kept): %s", m.ID, ae.Message)
		}
		return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed, "migration refused before anything was stopped (the stack runs on as before; snapshot %s is kept): %v", m.ID, err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "preflight", Message: "checking the nodes before stopping anything: " + DescribeTargets(plan)})
	// The sets were hashed as this migration wrote them and checked at its commit:
	// not re-hashed again.
	if err := s.preflightSkip(ctx, m, plan, VerifiedAtCommit(m), false); err != nil {
		return refused(err)
	}
	t = step("preflight", t)
	if err := j.step(ctx, StepStopping, func(op *store.Operation) { op.Targets, op.Mode = plan, api.ModeExact }); err != nil {
		return refused(fmt.Errorf("cannot journal its stop in the store: %v; check that etcd answers, then try again", err))
	}
	start := time.Now()
	prior, err := s.stopMoving(ctx, m, pk, st, j)
	if err != nil && !pk.wasEnded() {
		return refused(err)
	}
	t = step("stop", t)
	stopErr := err
	if err == nil {
		// A stop that failed stays journaled as stopping: its ending says which
		// moved tasks were ended (splitNeverEnded).
		_ = j.step(ctx, StepRestoring, func(op *store.Operation) { op.Stopped = prior })
	}
	var ids map[string]string
	if err == nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: DescribeTargets(plan)})
		// Journaled restored before the restored containers are unlocked: from then
		// on a following coordinator finishes the move (WithCommit).
		ids, err = s.restoreRetrying(WithCommit(ctx, func(ctx context.Context) error { return j.step(ctx, StepRestored, nil) }), m, plan)
		t = step("restore", t)
	}
	rec := store.Restore{At: time.Now().UTC(), Targets: plan, OK: err == nil, Mode: api.ModeExact}
	if err != nil {
		rec.Error = err.Error()
	}
	m.Restores = append(m.Restores, rec)
	if uerr := s.cfg.Store.Update(ctx, m); uerr != nil {
		s.log.Warn("cannot record restore", "snapshot", m.ID, "err", uerr)
	}
	if err != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restore-failed", Message: err.Error()})
		back := m
		if stopErr != nil {
			back = s.settleFailedStop(ctx, j, m)
		}
		return &api.MigrateResult{Snapshot: m}, s.partialRollback(ctx, back, plan, prior, err)
	}
	_ = j.step(ctx, StepRestored, nil)
	step("record", t)
	used = plan
	r := &api.RestoreResult{ID: m.ID, Targets: plan, Containers: ids, TotalMS: time.Since(start).Milliseconds()}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", MS: r.TotalMS, Message: fmt.Sprintf("%d moved containers run on their targets; %d others ran on untouched", len(plan), len(st.Containers)-len(plan))})
	if err := s.finishPostCopy(ctx, m, pk, plan, start); err != nil {
		return &api.MigrateResult{Snapshot: m, Restore: r}, err
	}
	return &api.MigrateResult{Snapshot: m, Restore: r}, nil
}

// finishPostCopy waits, after the restore of m onto targets, until the source of
// every post-copy container of m served its last page (an event line each, with the
// time since the migration's stop began at start; zero: not known, as in a
// recovery), records when (PagesArrived), then ends and removes the source and drops
// its set (it holds no pages). A container whose pages arrived before (recorded by a
// coordinator that died before ending its source) is not waited for again; one whose
// loss was recorded before is left as it is. A source whose wait fails lost pages its
// restored container may need: data loss for that container, recorded in m
// (PagesLost), published (a pages-lost progress event and events.PagesLost) and
// returned, naming it; its source is left as it is (frozen, for inspection) and its
// set kept. Unless the restored container is seen ended on its target (its restore
// failed after it began to run): then the source, which still holds its memory as
// of the migration's cut, is put back where it was (putBackPostCopy), a warning
// recorded in m and the failure returned. A wait that ends because ctx did records
// nothing: the source serves on, and a later call (the next coordinator's recovery)
// finishes it.
func (s *Restores) finishPostCopy(ctx context.Context, m *store.Manifest, pk *parkedStack, targets map[string]string, start time.Time) error {
	var lost, back []string
	for i := range m.Containers {
		c := &m.Containers[i]
		if !c.PostCopy || c.TaskID != "" || c.PagesLost != "" {
			continue
		}
		set := node.SetID(m.ID, c.Key())
		if c.PagesArrived.IsZero() {
			if err := s.nodes.WaitLazy(ctx, c.Node, set); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped waiting for the last pages of %s from node %s (%w): its source serves on; the next coordinator's recovery finishes the migration", c.Key(), c.Node, ctx.Err())
				}
				if t := targets[c.Key()]; t != "" && s.stoppedOnTarget(ctx, m, *c, t) {
					// Its restore failed after all: the restored container ended on
					// its target before every page arrived, and the source still holds
					// its memory as of the migration's cut: put back where it was.
					perr := s.putBackPostCopy(ctx, m, []store.Container{*c}, targets)
					if perr == nil {
						m.Warnings = append(m.Warnings, fmt.Sprintf("post-copy %s: its restored container stopped on node %s before every page arrived (%v); its source was put back on node %s, with its state as of this snapshot", c.Key(), t, err, c.Node))
						if uerr := s.cfg.Store.Update(ctx, m); uerr != nil {
							s.log.Warn("cannot record a post-copy source put back", "snapshot", m.ID, "container", c.Key(), "err", uerr)
						}
						back = append(back, fmt.Sprintf("%s (its restored container stopped on node %s before every page arrived: %v)", c.Key(), t, err))
						continue
					}
					err = fmt.Errorf("%w; its restored container stopped on node %s and putting its source back failed too: %v", err, t, perr)
				}
				c.PagesLost = err.Error()
				lost = append(lost, fmt.Sprintf("%s (its source on node %s: %v)", c.Key(), c.Node, err))
				s.event(ctx, api.Event{ID: m.ID, Phase: "pages-lost", Message: fmt.Sprintf("%s: the source on node %s failed before every page of its memory arrived (%v): the restored container may have lost memory", c.Key(), c.Node, err)})
				s.publish(ctx, events.Event{Kind: events.PagesLost, Stack: m.Stack, Node: c.Node, Service: c.Service, Slot: c.Slot, Container: c.ContainerID,
					Snapshot: m.ID, Set: set, Target: targets[c.Key()], Reason: err.Error()})
				if uerr := s.cfg.Store.Update(ctx, m); uerr != nil {
					s.log.Warn("cannot record the lost pages of a post-copy migration", "snapshot", m.ID, "container", c.Key(), "err", uerr)
				}
				continue
			}
			c.PagesArrived = time.Now().UTC()
			msg := fmt.Sprintf("%s: the last page of its memory arrived from node %s; ending the source", c.Key(), c.Node)
			var ms int64
			if !start.IsZero() {
				ms = time.Since(start).Milliseconds()
				msg = fmt.Sprintf("%s: the last page of its memory arrived from node %s %s after the stop began; ending the source", c.Key(), c.Node, time.Since(start).Round(time.Millisecond))
			}
			s.event(ctx, api.Event{ID: m.ID, Phase: "post-copy-done", MS: ms, Message: msg})
			// Recorded before the source is ended: a coordinator that finishes this
			// after a crash then knows the pages arrived.
			if uerr := s.cfg.Store.Update(ctx, m); uerr != nil {
				s.log.Warn("cannot record that a post-copy container's last page arrived", "snapshot", m.ID, "container", c.Key(), "err", uerr)
			}
		}
		if err := pk.endSome(ctx, []string{c.Key()}); err != nil {
			s.log.Warn("cannot end a post-copy source after its last page", "snapshot", m.ID, "container", c.Key(), "node", c.Node, "err", err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := s.nodes.Remove(cctx, c.Node, []string{c.ContainerID}); err != nil {
			s.log.Warn("cannot remove a post-copy source after its last page; 'docker rm -f' it there", "snapshot", m.ID, "container", c.ContainerID, "node", c.Node, "err", err)
		}
		if err := s.nodes.Drop(cctx, c.Node, set); err != nil {
			s.log.Warn("cannot drop a post-copy source's set (no pages) after its last page; 'swarmckpt rm' of the snapshot deletes it", "snapshot", m.ID, "set", set, "node", c.Node, "err", err)
		}
		cancel()
	}
	var msgs []string
	if len(lost) > 0 {
		msgs = append(msgs, fmt.Sprintf("post-copy migration lost data: %s; the restored containers run, but may be missing memory they had not fetched yet: restart them (or restore an earlier snapshot) rather than trust their state", strings.Join(lost, "; ")))
	}
	if len(back) > 0 {
		msgs = append(msgs, fmt.Sprintf("post-copy migration failed after its restore for %s: put back where they ran, with their state as of snapshot %s (what they did on their targets since is lost); migrate them again", strings.Join(back, "; "), m.ID))
	}
	if len(msgs) == 0 {
		return nil
	}
	return api.Errorf(api.CodeFailed, "%s", strings.Join(msgs, "; "))
}

// stoppedOnTarget says whether the container of c restored from m on target exists
// there but no longer runs (its restore failed after it began to run). Not known
// (the target does not answer, or has no such container): false.
func (s *Restores) stoppedOnTarget(ctx context.Context, m *store.Manifest, c store.Container, target string) bool {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := s.nodes.Standalone(cctx, target, m.Stack)
	if err != nil {
		s.log.Warn("cannot tell whether a post-copy container still runs on its target", "snapshot", m.ID, "container", c.Key(), "node", target, "err", err)
		return false
	}
	name := ContainerName(m.ID, c)
	for _, sc := range list {
		if sc.Name == name {
			return !sc.Running
		}
	}
	return false
}

// stopMoving ends a partial migration's parked containers (m's) and takes their
// swarm tasks out of swarm's hands, service by service, returning the replicas the
// scaled services had (nil: none scaled). Then the moved containers are removed,
// freeing their names and addresses.
//
// Swarm's scale-down does not remove the slots whose task ended: it ranks each
// slot by its per-node count (the nth task of the service on its node) and removes
// the highest ranks, and the replacement task that swarm's restart policy creates at
// once for an ended task counts as the slot's. A replacement on the least loaded
// node ranks low, and a running peer is removed instead (seen on the lab: a staying
// bank holder shut down, a fresh duplicate started). So, for a service with staying
// tasks, every node but the one with the most of them (X) is paused while its
// moved tasks end: swarm places their replacements on X, where they rank above
// every running task, and the scale-down by the moved slots removes exactly them.
// The availabilities are set back before it returns. A service whose tasks all move
// is scaled down without that (nothing of it stays).
func (s *Restores) stopMoving(ctx context.Context, m *store.Manifest, pk *parkedStack, st *stack.Stack, j *opJournal) (map[string]uint64, error) {
	t0 := time.Now()
	movedBySvc := map[string][]store.Container{} // swarm tasks moved, by service
	var standalone []string
	byNode := map[string][]string{}
	lazyByNode := map[string][]string{} // post-copy sources: disconnected, not ended (they serve their pages)
	for _, c := range m.Containers {
		if c.PostCopy && c.TaskID == "" {
			lazyByNode[c.Node] = append(lazyByNode[c.Node], c.ContainerID)
			continue
		}
		if c.TaskID != "" {
			movedBySvc[c.Service] = append(movedBySvc[c.Service], c)
		} else {
			standalone = append(standalone, c.Key())
		}
		byNode[c.Node] = append(byNode[c.Node], c.ContainerID)
	}
	var tried []string
	for _, nodeName := range slices.Sorted(maps.Keys(lazyByNode)) {
		ids := lazyByNode[nodeName]
		tried = append(tried, nodeName)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.nodes.Disconnect(cctx, nodeName, ids)
		cancel()
		if err != nil {
			err = fmt.Errorf("node %s: take the post-copy sources %s off their networks (so that their restores take their addresses): %w", nodeName, strings.Join(ids, " "), err)
			// Refused before anything was ended: the sources taken off their networks
			// so far get them back before their release.
			return nil, errors.Join(err, s.reconnectSources(ctx, m, tried))
		}
	}
	var prior map[string]uint64
	sw, _ := s.cfg.Stopper.(stack.Swarm)
	rr, _ := s.cfg.Stopper.(stack.ReplicaReader)
	ss, _ := s.cfg.Stopper.(ServiceStopper)
	aw, _ := s.cfg.Stopper.(stack.AvailabilityWriter)
	if len(movedBySvc) > 0 {
		if sw == nil || rr == nil || ss == nil || aw == nil {
			return nil, api.Errorf(api.CodeFailed, "cannot move swarm tasks alone: this coordinator cannot scale the stack's services or pause nodes; use --whole-stack")
		}
		all, err := rr.ServiceReplicas(ctx, m.Stack)
		if err != nil {
			return nil, api.Errorf(api.CodeFailed, "read the replicas of stack %s's services: %v", m.Stack, err)
		}
		prior = map[string]uint64{}
		for svc, cs := range movedBySvc {
			if all[svc] < uint64(len(cs)) {
				return nil, api.Errorf(api.CodeFailed, "service %s is set to %d replicas but %d of its tasks are to move: the stack changed; try again", svc, all[svc], len(cs))
			}
			prior[svc] = all[svc]
		}
		// Journaled before anything is ended: a following coordinator that finds a
		// service's moved tasks ended scales it down by them (finishMoveOut).
		if err := j.record(ctx, func(op *store.Operation) { op.Stopped = prior }); err != nil {
			return nil, fmt.Errorf("cannot journal the replicas of stack %s's services in the store (%v), so nothing was stopped; check that etcd answers, then try again", m.Stack, err)
		}
	}
	if err := pk.endSome(ctx, standalone); err != nil {
		return prior, fmt.Errorf("end the moving containers, parked since their dump: %w", err)
	}
	for _, svc := range slices.Sorted(maps.Keys(movedBySvc)) {
		if err := s.moveTasksOut(ctx, m, pk, st, j, svc, movedBySvc[svc], prior[svc], sw, ss, aw); err != nil {
			return prior, err
		}
	}
	if len(movedBySvc) > 0 {
		down := map[string]uint64{}
		for svc, cs := range movedBySvc {
			down[svc] = prior[svc] - uint64(len(cs))
		}
		s.event(ctx, api.Event{ID: m.ID, Phase: "stopped", Message: fmt.Sprintf("moved tasks out of swarm's hands: %s (were %s)", describeReplicas(down), describeReplicas(prior)), MS: time.Since(t0).Milliseconds()})
	}
	// Removed (swarm's task containers too: what comes back is the snapshot), so that
	// their names and addresses are free for the restore.
	// Node by node in parallel (independent).
	errs := make([]error, 0, len(byNode))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nodeName := range slices.Sorted(maps.Keys(byNode)) {
		ids := byNode[nodeName]
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := s.nodes.Remove(cctx, nodeName, ids)
			cancel()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: remove the moved containers %s: %w", nodeName, strings.Join(ids, " "), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return prior, errors.Join(errs...)
}

// moveTasksOut ends the moved tasks cs of service svc (parked) and scales svc down
// from replicas by as many, steering their replacements first (stopMoving). Each node
// it pauses is journaled in j (Operation.Paused) before the pause and dropped once
// it is active again: a coordinator killed meanwhile leaves it to the next one's
// recovery (activatePaused), not paused for good.
func (s *Restores) moveTasksOut(ctx context.Context, m *store.Manifest, pk *parkedStack, st *stack.Stack, j *opJournal, svc string, cs []store.Container,
	replicas uint64, sw stack.Swarm, ss ServiceStopper, aw stack.AvailabilityWriter) error {
	movedIDs := map[string]bool{}
	slots := map[string]bool{}
	var keys []string
	for _, c := range cs {
		movedIDs[c.TaskID] = true
		slots[c.Key()] = true
		keys = append(keys, c.Key())
	}
	stayingOn := map[string]int{}
	for _, c := range st.Containers {
		if c.Service == svc && c.TaskID != "" && !slots[c.Key()] {
			stayingOn[c.Node]++
		}
	}
	host := "" // the node with the most staying tasks: the replacements' place
	for _, n := range slices.Sorted(maps.Keys(stayingOn)) {
		if host == "" || stayingOn[n] > stayingOn[host] {
			host = n
		}
	}
	if host != "" {
		avail, err := aw.NodeAvailabilities(ctx)
		if err != nil {
			return fmt.Errorf("read the nodes' availability: %w", err)
		}
		var paused []string
		defer func() {
			var active []string
			for _, n := range paused {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
				if err := aw.UpdateNodeAvailability(cctx, n, stack.AvailabilityActive); err != nil {
					s.log.Error("cannot set a node paused for a partial migration active again", "node", n, "err", err)
					s.event(ctx, api.Event{ID: m.ID, Phase: "warning", Message: fmt.Sprintf("node %s stays paused: %v; set it active: docker node update --availability active %s", n, err, n)})
				} else {
					active = append(active, n)
				}
				cancel()
			}
			if len(active) > 0 {
				_ = j.record(ctx, func(op *store.Operation) {
					op.Paused = slices.DeleteFunc(op.Paused, func(n string) bool { return slices.Contains(active, n) })
				})
			}
		}()
		for _, n := range slices.Sorted(maps.Keys(avail)) {
			if n == host || avail[n] != stack.AvailabilityActive {
				continue
			}
			if err := j.record(ctx, func(op *store.Operation) { op.Paused = append(op.Paused, n) }); err != nil {
				return fmt.Errorf("cannot journal the pause of node %s in the store (%v), so it was not paused; check that etcd answers, then try again", n, err)
			}
			if err := aw.UpdateNodeAvailability(ctx, n, stack.AvailabilityPause); err != nil {
				return fmt.Errorf("pause node %s while the moved tasks of %s end: %w", n, svc, err)
			}
			paused = append(paused, n)
		}
		s.event(ctx, api.Event{ID: m.ID, Phase: "stopping", Message: fmt.Sprintf("nodes %s paused for a moment: swarm's replacements of the moved tasks of %s go to %s, where its scale-down removes them", strings.Join(paused, ","), svc, host)})
	}
	// Journaled before the end: from it on swarm may start replacements of the moved
	// tasks, and a following coordinator must finish their scale-down before it puts
	// the moved containers back (finishMoveOut), not leave a replacement and a
	// put-back running for one slot (fault seed 98: "holder answered twice").
	if err := j.record(ctx, func(op *store.Operation) {
		if !slices.Contains(op.Ending, svc) {
			op.Ending = append(op.Ending, svc)
		}
	}); err != nil {
		return fmt.Errorf("cannot journal the end of the moved tasks of %s in the store (%v), so they were not ended; check that etcd answers, then try again", svc, err)
	}
	if err := pk.endSome(ctx, keys); err != nil {
		return fmt.Errorf("end the moving containers of %s, parked since their dump: %w", svc, err)
	}
	// The moved tasks ended, as the manager sees them, and their replacements (if
	// any) assigned to host.
	wctx, cancel := context.WithTimeout(ctx, partialWait)
	err := waitTasks(wctx, sw, m.Stack, func(ts []stack.Task) bool {
		for _, t := range ts {
			switch {
			case movedIDs[t.TaskID]:
				if t.State == "running" || t.State == "starting" || t.DesiredState == "running" {
					return false
				}
			case slots[t.Key()] && (t.DesiredState == "running" || t.DesiredState == "ready"):
				if host != "" && t.Node != host {
					return false
				}
			}
		}
		return true
	})
	cancel()
	if err != nil {
		return fmt.Errorf("swarm does not report the moved tasks of %s ended, or their replacements placed on %s: %w", svc, host, err)
	}
	down := replicas - uint64(len(cs))
	if err := ss.ScaleServices(ctx, m.Stack, map[string]uint64{svc: down}, nil); err != nil {
		return fmt.Errorf("scale %s down to %d (the moved tasks): %w", svc, down, err)
	}
	// Nothing of the moved slots is wanted running any more.
	wctx, cancel = context.WithTimeout(ctx, partialWait)
	err = waitTasks(wctx, sw, m.Stack, func(ts []stack.Task) bool {
		for _, t := range ts {
			if slots[t.Key()] && (t.DesiredState == "running" || t.DesiredState == "ready") {
				return false
			}
		}
		return true
	})
	cancel()
	if err != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "warning", Message: fmt.Sprintf("swarm still wants a moved slot of %s running after the scale-down (%v): check 'docker service ps %s' for a duplicate", svc, err, svc)})
	}
	return nil
}

// settleFailedStop readies m (a partial migration whose stop failed) for its
// rollback, as the recovery does after a coordinator died in the stop: the moved
// slots of each service whose tasks were ended (j's Ending) are taken out of swarm's
// hands (finishMoveOut: swarm may run replacements of them, and the put-back would
// run beside them), and the moved swarm tasks never ended are released (they run on
// as swarm tasks, with their state). It returns m without the released ones: what
// the rollback puts back.
func (s *Restores) settleFailedStop(ctx context.Context, j *opJournal, m *store.Manifest) *store.Manifest {
	if j == nil {
		return m
	}
	s.finishMoveOut(ctx, j.op, m)
	kept, run := splitNeverEnded(j.op, m)
	if len(kept.Containers) > 0 {
		if err := s.StopParked(ctx, &kept, true); err != nil {
			s.log.Warn("rollback: releasing the moved tasks never ended (their hold's deadline releases them)", "snapshot", m.ID, "err", err)
		}
	}
	return &run
}

// waitTasks polls the stack's tasks until done says so or ctx ends.
func waitTasks(ctx context.Context, sw stack.Swarm, stackName string, done func([]stack.Task) bool) error {
	for {
		ts, err := sw.Tasks(ctx, stackName)
		if err == nil && done(ts) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addressRetryWaits are restoreRetrying's waits before each new try while an address
// is still held: short at first (the manager usually releases a moved task's address
// within a fraction of a second of its end), 4 s in all, as the 2 s x 2 they replace.
var addressRetryWaits = []time.Duration{150 * time.Millisecond, 250 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond, time.Second, 1500 * time.Millisecond}

// DefaultPrepareWait is Config.PrepareWait's default. The wait was off by default
// for a while: with it on, a coordinator killed right after the moving containers'
// stop (fault seed 2, twice in two runs) was followed by a put-back on the original
// node that met the node's removal of its overlay instance (the last container there
// on the network had just been dumped and removed): dockerd kept the failed
// attachment and every attempt waited out 20 s (docs/restore.md "Network attachments
// on worker nodes"). The sources now hold keepers of their own for the whole
// migration (prepareEarly), so a put-back always finds its networks.
const DefaultPrepareWait = 10 * time.Second

// prepareWait is how long prepareEarly waits for the nodes (Config.PrepareWait).
func (s *Restores) prepareWait() time.Duration {
	if s.cfg.PrepareWait == 0 {
		return DefaultPrepareWait
	}
	return s.cfg.PrepareWait
}

// prepareEarly asks each node of a partial migration (snapshot id, moving containers
// plan) to get ready (node.PreflightRequest.Prepare: network keepers, which take
// 0.7-2.5 s to start here): each target for the containers it restores (the keepers
// would otherwise be on the restore's path), and each source for the containers
// that leave it, under the names their put-back restores there (its last container
// on a network stopped, a node removes its instance of the network, and a rollback's
// put-back that met that removal failed: fault seed 2). It waits, before anything is
// frozen, until every live node said it is ready (Ready), at most prepareWait: the
// keepers' start is then off the downtime of every copy mode (post-copy's short lazy
// dump hid none of it; a dump into the target hid it only when longer), and the
// sources' keepers run before their containers stop. A node that is not ready in
// time, or fails to answer, is not waited for further (logged; an event says so):
// the migration goes ahead and its restore waits for what is still starting, as
// without the wait; a node older than Ready answers at once. The pre-flight's own
// prepare after the checks finds the targets' keepers running. The holds end when the
// migration ends (releasePrepared), committed, rolled back or refused; a restore of
// the container on the node ends its hold there too; a coordinator killed meanwhile
// leaves them to its successor's recovery (which releases them) or to the nodes'
// bound (a prepared hold lasts a few minutes; a keeper whose worker was killed ends
// by itself after 5 minutes).
func (s *Restores) prepareEarly(ctx context.Context, id string, st *stack.Stack, plan map[string]string) {
	s.prepareNodes(ctx, id, prepareRequests(id, st, plan), "the migration", "the restore waits for them")
}

// prepareNodes sends each live node of reqs its Prepare (with Ready when the prepare
// wait is on) and waits, at most prepareWait, until every one answered (prepareEarly;
// a drain hold's keepers, heldkeepers.go). what names the operation in the log and
// the prepare-late event, then what it does when a node is late.
func (s *Restores) prepareNodes(ctx context.Context, id string, reqs map[string]*node.PreflightRequest, what, then string) {
	wait := s.prepareWait()
	for _, r := range reqs {
		r.Prepare, r.Ready = true, wait > 0
	}
	live := map[string]bool{}
	for _, w := range s.live() {
		live[w.Node] = true
	}
	type answer struct {
		node string
		err  error
	}
	t0 := time.Now()
	answers := make(chan answer, len(reqs)) // never blocks a sender left behind
	pending := map[string]bool{}
	bg := context.WithoutCancel(ctx)
	for n, req := range reqs {
		if !live[n] {
			continue
		}
		pending[n] = true
		go func() {
			rep, err := s.askPreflight(bg, n, req)
			if err == nil && rep.Error != "" {
				err = errors.New(rep.Error)
			}
			if err != nil {
				s.log.Debug("node did not prepare the migration early (a target's pre-flight prepares it)", "node", n, "err", err)
			}
			answers <- answer{n, err}
		}()
	}
	if wait <= 0 || len(pending) == 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case a := <-answers:
			delete(pending, a.node)
		case <-timer.C:
			late := slices.Sorted(maps.Keys(pending))
			s.log.Info("nodes not ready for "+what+" in time; going ahead: "+then, "snapshot", id, "nodes", late, "wait", wait)
			s.event(ctx, api.Event{ID: id, Phase: "prepare-late", Message: fmt.Sprintf("node(s) %s not ready for %s after %s (network keepers still starting): going ahead; %s", strings.Join(late, ", "), what, wait, then)})
			return
		case <-ctx.Done():
			return
		}
	}
	s.log.Info("nodes ready for "+what+" before anything stops", "snapshot", id, "nodes", len(reqs), "seconds", time.Since(t0).Seconds())
}

// restoreRetrying restores m's containers on targets, trying again (after each of
// addressRetryWaits) while an address is still held: the manager releases a moved
// task's address shortly after its end.
func (s *Restores) restoreRetrying(ctx context.Context, m *store.Manifest, targets map[string]string) (map[string]string, error) {
	var err error
	for try := 0; ; try++ {
		var ids map[string]string
		if ids, err = s.restorer().Restore(ctx, m, targets); err == nil || try == len(addressRetryWaits) || !strings.Contains(err.Error(), "address already in use") {
			return ids, err
		}
		s.log.Info("an address is still held; restoring again", "snapshot", m.ID, "try", try+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(addressRetryWaits[try]):
		}
	}
}

// putBackPostCopy puts the post-copy sources post of m (a failed partial migration
// to targets) back where they were: what their failed restores may have left on the
// targets is removed by name (it may hold their addresses), then, on each source's
// node, its page server is stopped and it is put back on its networks with its
// addresses and aliases (Reconnect; tried again while an address is still held, as a
// restore is), then released (thawed, unlocked): it runs on with its state. A source
// whose networks could not be put back is released all the same (its hold's deadline
// would release it anyway, later) and named in the error with what to do.
func (s *Restores) putBackPostCopy(ctx context.Context, m *store.Manifest, post []store.Container, targets map[string]string) error {
	uctx := context.WithoutCancel(ctx)
	created := map[string][]string{}
	for _, c := range post {
		if t, ok := targets[c.Key()]; ok {
			created[t] = append(created[t], ContainerName(m.ID, c))
		}
	}
	for _, t := range slices.Sorted(maps.Keys(created)) {
		cctx, cancel := context.WithTimeout(uctx, time.Minute)
		if err := s.nodes.Remove(cctx, t, created[t]); err != nil {
			s.log.Warn("rollback: cannot remove what the failed restore left (remove it by hand: docker rm -f)", "node", t, "containers", created[t], "err", err)
		}
		cancel()
	}
	byNode := reconnectRequests(m.ID, post)
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		req := byNode[n]
		var err error
		for try := 0; ; try++ {
			cctx, cancel := context.WithTimeout(uctx, time.Minute)
			err = s.nodes.Reconnect(cctx, n, *req)
			cancel()
			if err == nil || try == len(addressRetryWaits) || !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
				break
			}
			time.Sleep(addressRetryWaits[try])
		}
		if err != nil {
			var what []string
			for _, h := range req.Containers {
				for _, a := range h.Networks {
					what = append(what, fmt.Sprintf("docker network connect --ip %s %s %s", a.IPv4, a.Network, h.Container))
				}
			}
			errs = append(errs, fmt.Errorf("node %s: put the post-copy sources back on their networks: %w; they run there with their state but without them: on node %s, %s", n, err, n, strings.Join(what, "; ")))
		}
	}
	sub := *m
	sub.Containers = post
	if err := s.StopParked(uctx, &sub, true); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		keys := make([]string, 0, len(post))
		for _, c := range post {
			keys = append(keys, c.Key())
		}
		s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: "the post-copy sources " + strings.Join(keys, ", ") + " run again where they were, on their addresses, with their state"})
	}
	return errors.Join(errs...)
}

// reconnectSources puts the post-copy sources of m on nodes back on their networks
// (their page servers stopped), before their release by a migration refused at its
// stop; nil when every one is back.
func (s *Restores) reconnectSources(ctx context.Context, m *store.Manifest, nodes []string) error {
	var post []store.Container
	for _, c := range m.Containers {
		if c.PostCopy && c.TaskID == "" && slices.Contains(nodes, c.Node) {
			post = append(post, c)
		}
	}
	byNode := reconnectRequests(m.ID, post)
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := s.nodes.Reconnect(cctx, n, *byNode[n]); err != nil {
			errs = append(errs, fmt.Errorf("node %s: put the post-copy sources back on their networks: %w (they run on there without them; 'docker network connect --ip' puts them back)", n, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// reconnectRequests are the Reconnect requests that put the post-copy sources post of
// snapshot id back on their networks, by node.
func reconnectRequests(id string, post []store.Container) map[string]*node.ReconnectRequest {
	byNode := map[string]*node.ReconnectRequest{}
	for _, c := range post {
		if byNode[c.Node] == nil {
			byNode[c.Node] = &node.ReconnectRequest{}
		}
		byNode[c.Node].Containers = append(byNode[c.Node].Containers, node.HeldNetworks{Container: c.ContainerID, Set: node.SetID(id, c.Key()), Networks: attachments(c)})
	}
	return byNode
}

// attachments are the networks a snapshot container was on, with its IPv4 address
// on each (oldAddresses' pairing) and its aliases there.
func attachments(c store.Container) []node.NetworkAttach {
	ips := map[string]string{}
	for _, a := range oldAddresses(c) {
		if ip, err := netip.ParseAddr(a.IP); err == nil && ip.Is4() && ips[a.Network] == "" {
			ips[a.Network] = ip.String()
		}
	}
	out := make([]node.NetworkAttach, 0, len(c.Networks))
	for _, n := range c.Networks {
		out = append(out, node.NetworkAttach{Network: n, IPv4: ips[n], Aliases: slices.Clone(c.Aliases[n])})
	}
	return out
}

// longestDump is the longest dump of m's containers (ms): the data plane's share of
// a migration's snapshot step.
func longestDump(m *store.Manifest) int64 {
	var ms int64
	for _, c := range m.Containers {
		ms = max(ms, c.DumpMS)
	}
	return ms
}

// partialRollback puts a failed partial migration's moved containers back on their
// original nodes, with their state (standalone containers on their addresses); if
// that fails too, their services are scaled back to prior (fresh from their images).
// The post-copy sources among them (never ended: they hold the only copy of their
// memory) are put back by putBackPostCopy. targets is the migration's plan.
func (s *Restores) partialRollback(ctx context.Context, m *store.Manifest, targets map[string]string, prior map[string]uint64, cause error) error {
	s.event(ctx, api.Event{ID: m.ID, Phase: "rollback", Message: cause.Error()})
	if len(m.Containers) == 0 {
		return api.Errorf(api.CodeFailed, "migration failed before the moved containers were stopped; they were released and run on where they were, with their state: %v", cause)
	}
	var post []store.Container
	rest := *m
	rest.Containers = nil
	for _, c := range m.Containers {
		if c.PostCopy {
			post = append(post, c)
			continue
		}
		rest.Containers = append(rest.Containers, c)
	}
	if len(post) > 0 {
		perr := s.putBackPostCopy(ctx, m, post, targets)
		if len(rest.Containers) == 0 {
			if perr != nil {
				return api.Errorf(api.CodeFailed, "migration failed (%v) and putting the moved containers back where they were failed too: %v", cause, perr)
			}
			return api.Errorf(api.CodeFailed, "migration failed, the moved containers were put back where they were, with their state: %v", cause)
		}
		if perr != nil {
			cause = fmt.Errorf("%w; putting the post-copy sources back failed: %v", cause, perr)
		}
		m = &rest
	}
	// What the failed restore may have left on the targets goes first, by name: it
	// would run beside an original that is kept, or hold a name or address.
	s.removeFailedRestore(ctx, m, targets)
	// The originals still parked are released (frozen since their dump, they run on
	// with the snapshot's state), those released earlier ran on and are kept (never
	// ended: fault seed 1793); only the ended ones are put back from the snapshot.
	o := s.settleOriginals(ctx, m)
	if len(o.gone) == 0 {
		s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: "no moved container had been ended: they run on where they were" + withNote(o.note())})
		return api.Errorf(api.CodeFailed, "migration failed and was abandoned before any moved container was ended: they run on where they were%s: %v", withNote(o.note()), cause)
	}
	gone := only(m, o.gone)
	orig := map[string]string{}
	byNode := map[string][]string{}
	for _, c := range gone.Containers {
		orig[c.Key()] = c.Node
		byNode[c.Node] = append(byNode[c.Node], c.ContainerID)
	}
	// The ended originals, if the stop did not remove them: they hold their names.
	for nodeName, ids := range byNode {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		_ = s.nodes.Remove(cctx, nodeName, ids)
		cancel()
	}
	if _, err := s.restoreRetrying(context.WithoutCancel(ctx), gone, orig); err != nil {
		err = fmt.Errorf("migration failed (%v) and putting the moved containers back on their nodes failed too (%w)%s", cause, err, withNote(o.note()))
		if len(prior) == 0 {
			return api.Errorf(api.CodeFailed, "%v; snapshot %s keeps their state (its image sets stay on their nodes)", err, m.ID)
		}
		if serr := s.startAgain(ctx, m.Stack, prior); serr != nil {
			return api.Errorf(api.CodeFailed, "%v; %v", err, serr)
		}
		return api.Errorf(api.CodeFailed, "%v; their services were scaled back to %s (fresh from their images)", err, describeReplicas(prior))
	}
	keys := make([]string, 0, len(gone.Containers))
	for _, c := range gone.Containers {
		keys = append(keys, c.Key())
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: fmt.Sprintf("the moved containers run again where they were, with their state: %s put back from %s%s", strings.Join(keys, ", "), m.ID, withNote(o.note()))})
	return api.Errorf(api.CodeFailed, "migration failed, the moved containers were put back where they were, with their state (%s from snapshot %s%s): %v", strings.Join(keys, ", "), m.ID, withNote(o.note()), cause)
}

// withNote is "; " and note, or "" for an empty note.
func withNote(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}

// removeFailedRestore removes, by name, what a failed restore of m onto targets may
// have left there (restored, locked, or created and never started): nothing of it may
// run beside an original that is kept, nor hold a name or address a put-back needs.
func (s *Restores) removeFailedRestore(ctx context.Context, m *store.Manifest, targets map[string]string) {
	byNode := map[string][]string{}
	for _, c := range m.Containers {
		if t, ok := targets[c.Key()]; ok && t != "" && t != c.Node {
			byNode[t] = append(byNode[t], ContainerName(m.ID, c))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := s.nodes.Remove(cctx, n, byNode[n]); err != nil {
			s.log.Warn("rollback: cannot remove what the failed restore left (remove it by hand: docker rm -f)", "node", n, "containers", byNode[n], "err", err)
		}
		cancel()
	}
}

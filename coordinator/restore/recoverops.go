package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// RecoverOperations finishes or rolls back every restore and migration whose journal
// (store.Operation, opjournal.go) a dead coordinator left, by Decide's rule:
// released (nothing was stopped), rolled back (the parked snapshot put back where it
// ran: in swarm mode as swarm tasks), scaled back (nothing was parked) or rolled forward (the restore
// had completed). Each is done under the stack's lock, taken over from the dead
// coordinator, and its journal deleted once done; one that cannot be done (its
// stack locked by a live coordinator, the store unreachable) stays journaled for
// the next call. The coordinator's startup recovery (recover.go) calls it after the
// unfinished snapshots are aborted; a standby taking over calls it too.
func (s *Restores) RecoverOperations(ctx context.Context) error {
	ops, err := s.cfg.Store.ListOperations(ctx)
	if err != nil {
		return fmt.Errorf("list the journaled restores and migrations: %w", err)
	}
	if len(ops) == 0 {
		return nil
	}
	nodes := map[string]bool{}
	parked := map[string]*store.Manifest{}
	for _, op := range ops {
		for _, n := range op.Targets {
			nodes[n] = true
		}
		for _, n := range op.Nodes {
			nodes[n] = true
		}
		if p := s.parkedOf(ctx, op); p != nil {
			parked[op.ID] = p
			for _, c := range p.Containers {
				nodes[c.Node] = true
			}
		}
	}
	s.cfg.Host.AwaitAgents(ctx, nodes)
	var errs []error
	for _, op := range ops {
		if op.Kind == KindKeepers {
			if err := s.recoverKept(ctx, op); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.recoverOp(ctx, op, parked[op.ID]); err != nil {
			errs = append(errs, fmt.Errorf("%s of %s (stack %s): %w", op.Kind, op.Snapshot, op.Stack, err))
		}
	}
	return errors.Join(errs...)
}

// parkedOf is op's parked snapshot if it committed (its containers parked after their
// dump), else nil (none, not taken, or aborted: its containers were released).
func (s *Restores) parkedOf(ctx context.Context, op *store.Operation) *store.Manifest {
	if op.Parked == "" {
		return nil
	}
	m, err := s.cfg.Store.Get(ctx, op.Parked)
	if err != nil || m.State != store.StateCommitted {
		return nil
	}
	return m
}

// recoverOp does Decide's action for op under its stack's lock, then deletes
// its journal.
func (s *Restores) recoverOp(ctx context.Context, op *store.Operation, parked *store.Manifest) error {
	act := Decide(op)
	if act == ActRollBack && parked == nil {
		act = ActScaleBack // its checkpoint is gone or was never committed
	}
	log := s.log.With("operation", op.ID, "kind", op.Kind, "snapshot", op.Snapshot, "stack", op.Stack, "step", op.Step, "action", string(act))
	log.Warn("found a restore or migration a previous coordinator did not finish")
	// The dead coordinator's lock lapses with its lease (which an embedded etcd,
	// restarted with its coordinator, extends): break it at once, then hold the
	// stack while recovering.
	if err := s.cfg.Store.BreakLock(ctx, op.Stack, op.ID); err != nil {
		log.Warn("cannot break the dead coordinator's stack lock (it lapses with its lease)", "err", err)
	}
	lock, err := s.lockStack(ctx, op.Stack, "recover-"+op.Snapshot)
	if err != nil {
		return fmt.Errorf("left journaled, retried at the next start: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
	}()
	m, err := s.cfg.Store.Get(ctx, op.Snapshot)
	if err != nil {
		m = nil // recorded nowhere then; the action does not need it
	}
	if act == ActRollBack && parked.Partial {
		// Before the paused nodes are set active: swarm's replacements of the moved
		// tasks went to the node left active, where the scale-down removes them.
		s.finishMoveOut(ctx, op, parked)
	}
	s.activatePaused(ctx, op)
	if op.Kind == "restore" && m != nil {
		// The network keepers the dead coordinator had the targets prepare (under the
		// restored names, never a put-back's) end before anything is put back: one
		// given a stopped container's address would hold it for minutes, and that
		// container's put-back could not take it (fault seed 1234).
		s.releasePrepared(ctx, op.Snapshot, s.preparedAt(op, m.Containers), nil)
	}
	var rerr error
	switch act {
	case ActRelease:
		if parked != nil {
			rerr = s.StopParked(ctx, parked, true)
		}
	case ActRollForward:
		rerr = s.rollForward(ctx, op, m, parked)
	case ActRollBack:
		rerr = s.rollBackOp(ctx, op, m, parked)
	case ActScaleBack:
		rerr = s.scaleBackOp(ctx, op, m)
	}
	if ref := parked; op.Kind == "migrate" && ctx.Err() == nil {
		if ref == nil {
			ref = m
		}
		if ref != nil && ref.Partial {
			// The network keepers the dead coordinator had the moving containers' nodes
			// prepare (prepareEarly) are no longer needed: the put-back's restores
			// ended theirs on the sources; the others end now, not minutes later.
			s.releasePrepared(ctx, op.Snapshot, ref.Containers, op.Targets)
		} else if ref != nil {
			// A whole-stack migration's targets' (after the put-back: a target that is
			// also a container's own node prepared it under its put-back's name).
			s.releasePrepared(ctx, op.Snapshot, s.preparedAt(op, ref.Containers), nil)
		}
	}
	if rerr != nil && ctx.Err() != nil {
		// This coordinator stops (or lost its leadership) mid-way: the next one
		// recovers the operation again (each action can be repeated).
		log.Warn("recovery of the operation interrupted: left journaled for the next coordinator", "err", rerr)
		return fmt.Errorf("left journaled, recovered again at the next start: %w", rerr)
	}
	if rerr != nil {
		log.Error("recovery of the operation failed", "err", rerr)
	} else {
		log.Info("recovered the operation")
	}
	if err := s.cfg.Store.DeleteOperation(ctx, op.ID); err != nil {
		return fmt.Errorf("delete its journal: %w", err)
	}
	return rerr
}

// rollForward finishes a restore that completed: the parked containers are ended
// (the stop did; again in case), a migration's streamed copies that no restore used
// are dropped, and the restore is recorded on the snapshot if it is not yet. The
// post-copy sources of a migration are not ended with them: the restored containers
// may still be fetching their memory from them (the post-copy window), so each is
// ended only once it served its last page (finishPostCopy, after the restored
// containers are unlocked); a source that failed first is data loss for its
// container, returned.
func (s *Restores) rollForward(ctx context.Context, op *store.Operation, m, parked *store.Manifest) error {
	if parked == nil && m != nil && op.Kind == "migrate" && op.Parked == m.ID && m.State == store.StateCommitted {
		parked = m // its own snapshot (not read as the parked one: the store failed then)
	}
	var post []store.Container
	if parked != nil {
		var rest store.Manifest
		post, rest = splitPostCopy(parked)
		if len(rest.Containers) > 0 {
			if err := s.StopParked(ctx, &rest, false); err != nil {
				s.log.Debug("parked containers of a completed restore (ended by its stop)", "err", err)
			}
		}
	}
	if m == nil && len(post) == 0 {
		return nil
	}
	if m == nil {
		m = parked // a post-copy migration's snapshot is its parked one
	}
	if op.Kind == "migrate" && op.Mode != api.ModeSwarm {
		s.unlockCommitted(ctx, m, op.Targets)
		s.dropStreamed(ctx, m, op.Targets)
	}
	var ferr error
	if len(post) > 0 {
		s.event(ctx, api.Event{ID: m.ID, Phase: "post-copy", Message: fmt.Sprintf("coordinator %s died in the post-copy window of the migration: waiting until every page reached the restored containers, then ending their sources", op.Coordinator)})
		ferr = s.finishPostCopy(ctx, m, s.newParkedStack(parked), op.Targets, time.Time{})
		if ctx.Err() != nil {
			return ferr // left journaled: the next coordinator waits again
		}
	}
	for _, r := range m.Restores {
		if r.OK && !r.At.Before(op.UpdatedAt) {
			return ferr // recorded by the dead coordinator
		}
	}
	s.recordRecovered(ctx, m, store.Restore{At: time.Now().UTC(), Targets: op.Targets, OK: true, Mode: op.Mode})
	return ferr
}

// unlockCommitted unlocks, by name, the containers a dead coordinator restored from m
// on targets and journaled restored before unlocking them (WithCommit): they would
// otherwise stay network-locked until their hold's deadline. Already unlocked ones
// answer success.
func (s *Restores) unlockCommitted(ctx context.Context, m *store.Manifest, targets map[string]string) {
	byNode := map[string][]string{}
	for _, c := range m.Containers {
		if t, ok := targets[c.Key()]; ok && t != "" {
			byNode[t] = append(byNode[t], ContainerName(m.ID, c))
		}
	}
	for nodeName, names := range byNode {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := s.nodes.Unlock(cctx, nodeName, names); err != nil {
			s.log.Warn("roll forward: unlocking the restored containers (released at their hold's deadline otherwise)", "node", nodeName, "containers", names, "err", err)
		}
		cancel()
	}
}

// rollBackOp puts an interrupted operation's parked snapshot back where it ran (a
// swarm-mode operation's as swarm tasks, falling back to standalone containers on the
// original nodes): first it stops what still runs of the stack, as the restore's stop does
// (idempotent): the parked containers ended, the services at 0, a swarm-mode
// restore's placements taken back, every standalone container of the stack removed
// (an earlier restore's, and those the interrupted restore created) but the
// originals released after their dump, which ran on and are kept (putBackOriginals);
// then it restores the rest of the parked snapshot, retrying once; if that fails, the
// services are scaled back (fresh, as a failed put-back does).
func (s *Restores) rollBackOp(ctx context.Context, op *store.Operation, m, parked *store.Manifest) error {
	s.event(ctx, api.Event{ID: op.Snapshot, Phase: "rollback", Message: fmt.Sprintf("coordinator %s died during the %s at step %s: putting the stack back from %s", op.Coordinator, op.Kind, op.Step, parked.ID)})
	pk := s.newParkedStack(parked)
	if parked.Partial {
		return s.rollBackPartialOp(ctx, op, m, parked)
	}
	stopped, err := s.stopStack(ctx, parked, pk.killFunc())
	if err != nil {
		s.log.Warn("rollback: stopping what runs of the stack", "stack", op.Stack, "err", err)
	}
	if err := pk.end(ctx); err != nil {
		s.log.Debug("rollback: parked containers (already ended by the stop?)", "err", err)
	}
	s.undoPlacements(ctx, op, m)
	s.removeInterrupted(ctx, op, m)
	replicas := s.replicasBefore(op, stopped, parked)
	if op.Mode == api.ModeSwarm {
		// A swarm-mode restore's checkpoint, or a swarm-mode migration's snapshot,
		// goes back as it ran: as swarm tasks, the services at the replicas they had,
		// on the nodes they ran on (as its own failure does: swarmFailed,
		// swarmRollback). The put-back's nodes and constraints are journaled first:
		// should this coordinator die too, the next one takes them back.
		err := s.swarmPutBack(ctx, parked, &opJournal{s: s, op: op})
		if err == nil {
			s.recordRecovered(ctx, m, store.Restore{At: time.Now().UTC(), Mode: op.Mode,
				Error: fmt.Sprintf("coordinator %s died during the %s (step %s); the next coordinator put the stack back from %s (as swarm tasks)", op.Coordinator, op.Kind, op.Step, parked.ID)})
			s.event(ctx, api.Event{ID: op.Snapshot, Phase: "put-back", Message: "the stack's services run again at the replicas they had, with their state, from " + parked.ID})
			return nil
		}
		s.log.Warn("rollback: putting the checkpoint back as swarm tasks failed: putting it back on its original nodes", "snapshot", parked.ID, "err", err)
	}
	// Every standalone container of the stack removed but the originals that ran on
	// after their dump (kept: originals.go), then the rest put back, trying twice.
	_, perr := s.putBackOriginals(ctx, parked, nil, nil)
	if op.Kind == "migrate" && m != nil && op.Mode != api.ModeSwarm {
		s.dropStreamed(ctx, m, nil)
	}
	rec := store.Restore{At: time.Now().UTC(), Targets: op.Targets, Mode: op.Mode,
		Error: fmt.Sprintf("coordinator %s died during the %s (step %s); the next coordinator put the stack back from %s", op.Coordinator, op.Kind, op.Step, parked.ID)}
	if perr != nil {
		rec.Error = fmt.Sprintf("coordinator %s died during the %s (step %s); putting the stack back from %s failed too: %v", op.Coordinator, op.Kind, op.Step, parked.ID, perr)
		s.recordRecovered(ctx, m, rec)
		return errors.Join(fmt.Errorf("putting back %s after coordinator %s died: %w; to put it back by hand: 'swarmckpt restore %s --on-original'", parked.ID, op.Coordinator, perr, parked.ID),
			s.startAgain(ctx, op.Stack, replicas))
	}
	s.recordRecovered(ctx, m, rec)
	s.event(ctx, api.Event{ID: op.Snapshot, Phase: "put-back", Message: "the stack's containers run again where they were, with their state, from " + parked.ID})
	return nil
}

// rollBackPartialOp is rollBackOp for a partial migration (parked.Partial): only its
// moved containers were stopped, so only they are considered: the containers its
// restore may have created removed, those still parked released (they run on with
// the snapshot's state), those released since their dump kept (they ran on: never
// ended nor replaced), and the ended ones put back on their original nodes
// (settleOriginals); the stack's other containers are not touched. If that fails, the
// services it scaled down go back to the replicas it journaled (fresh). Its post-copy
// sources are never ended (each holds the only copy of its container's memory, and
// its set none of the pages): each is put back where it was as a failed restore's
// rollback puts it back (putBackPostCopy: what the restore left on its target
// removed, its page server stopped, its networks given back, then released).
func (s *Restores) rollBackPartialOp(ctx context.Context, op *store.Operation, m, parked *store.Manifest) error {
	post, rest := splitPostCopy(parked)
	var errs []error
	if kept, run := splitNeverEnded(op, &rest); len(kept.Containers) > 0 {
		// Swarm tasks the dead coordinator never ended: released, they run on where
		// they were as swarm tasks, with their state (swarm never saw them end). Ended
		// and put back as standalone containers, each would run beside the
		// replacement swarm starts for it.
		if err := s.StopParked(ctx, &kept, true); err != nil {
			s.log.Warn("rollback: releasing the moved tasks never ended (their hold's deadline releases them)", "snapshot", parked.ID, "err", err)
		}
		rest = run
		if len(post) == 0 && len(rest.Containers) == 0 {
			s.recordRecovered(ctx, m, store.Restore{At: time.Now().UTC(), Targets: op.Targets, Mode: op.Mode,
				Error: fmt.Sprintf("coordinator %s died during the partial %s (step %s), before it ended the moved containers: the next coordinator released them, they run on where they were", op.Coordinator, op.Kind, op.Step)})
			if m != nil {
				s.dropStreamed(ctx, m, nil)
			}
			s.event(ctx, api.Event{ID: op.Snapshot, Phase: "put-back", Message: "the moved containers were never stopped: released, they run on where they were, with their state"})
			return nil
		}
	}
	if len(post) > 0 {
		if err := s.putBackPostCopy(ctx, parked, post, op.Targets); err != nil {
			errs = append(errs, fmt.Errorf("putting the post-copy sources of %s back after coordinator %s died: %w", parked.ID, op.Coordinator, err))
		}
	}
	var perr error
	var o settled
	if len(rest.Containers) > 0 {
		s.removeInterrupted(ctx, op, &rest)
		// The originals still parked are released (their state is the snapshot's),
		// those released earlier ran on and are kept; only the ended ones are put
		// back (originals.go).
		o = s.settleOriginals(ctx, &rest)
		gone := only(&rest, o.gone)
		byNode := map[string][]string{}
		orig := map[string]string{}
		for _, c := range gone.Containers {
			byNode[c.Node] = append(byNode[c.Node], c.ContainerID)
			orig[c.Key()] = c.Node
		}
		for nodeName, ids := range byNode { // the originals, if the stop did not remove them
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = s.nodes.Remove(cctx, nodeName, ids)
			cancel()
		}
		if len(gone.Containers) > 0 {
			_, perr = s.restoreRetrying(context.WithoutCancel(ctx), gone, orig)
		}
		if len(o.unknown) > 0 {
			errs = append(errs, errors.New(o.note()))
		}
	}
	if m != nil {
		s.dropStreamed(ctx, m, nil)
	}
	rec := store.Restore{At: time.Now().UTC(), Targets: op.Targets, Mode: op.Mode,
		Error: fmt.Sprintf("coordinator %s died during the partial %s (step %s); the next coordinator put the moved containers back where they were%s", op.Coordinator, op.Kind, op.Step, withNote(o.note()))}
	if perr != nil {
		rec.Error = fmt.Sprintf("coordinator %s died during the partial %s (step %s); putting the moved containers back failed too: %v", op.Coordinator, op.Kind, op.Step, perr)
		s.recordRecovered(ctx, m, rec)
		return errors.Join(append(errs, fmt.Errorf("putting back the containers of %s after coordinator %s died: %w", parked.ID, op.Coordinator, perr),
			s.startAgain(ctx, op.Stack, op.Stopped))...)
	}
	if len(errs) > 0 {
		rec.Error = fmt.Sprintf("coordinator %s died during the partial %s (step %s); the next coordinator put the moved containers back where they were, but: %v", op.Coordinator, op.Kind, op.Step, errors.Join(errs...))
	}
	s.recordRecovered(ctx, m, rec)
	if len(rest.Containers) > 0 {
		s.event(ctx, api.Event{ID: op.Snapshot, Phase: "put-back", Message: "the moved containers run again where they were, with their state, from " + parked.ID + withNote(o.note())})
	}
	return errors.Join(errs...)
}

// scaleBackOp ends an interrupted operation that parked nothing (nothing ran, or
// --discard-running): whatever the interrupted restore created is removed and the
// services are scaled back to the replicas the stop found (or, if it was not
// recorded, the snapshot's), fresh, as a failed restore without a checkpoint does.
func (s *Restores) scaleBackOp(ctx context.Context, op *store.Operation, m *store.Manifest) error {
	s.undoPlacements(ctx, op, m)
	s.removeInterrupted(ctx, op, m)
	ref := m
	if ref == nil {
		ref = &store.Manifest{ID: op.Snapshot, Stack: op.Stack}
	}
	if _, err := s.removeStandalone(ctx, ref); err != nil {
		s.log.Warn("scale back: removing the stack's standalone containers", "stack", op.Stack, "err", err)
	}
	s.recordRecovered(ctx, m, store.Restore{At: time.Now().UTC(), Targets: op.Targets, Mode: op.Mode,
		Error: fmt.Sprintf("coordinator %s died during the %s (step %s); the next coordinator started the services again", op.Coordinator, op.Kind, op.Step)})
	return s.startAgain(ctx, op.Stack, s.replicasBefore(op, nil, m))
}

// startAgain scales the stack's services to replicas (a failure's last resort: they
// start fresh from their images).
func (s *Restores) startAgain(ctx context.Context, stackName string, replicas map[string]uint64) error {
	ss, ok := s.cfg.Stopper.(ServiceStopper)
	if !ok || len(replicas) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := ss.ScaleServices(cctx, stackName, replicas, nil); err != nil {
		return fmt.Errorf("start the services of stack %s again failed (start them by hand: docker service scale %s): %w", stackName, scaleArgs(replicas), err)
	}
	s.log.Warn("services started again fresh from their images", "stack", stackName, "replicas", describeReplicas(replicas))
	return nil
}

// replicasBefore are the replicas to start again if nothing can be put back: per
// service the most of those the stop found (journaled, or found now) and the count
// of ref's containers (what ran, or the snapshot's).
func (s *Restores) replicasBefore(op *store.Operation, stopped map[string]uint64, ref *store.Manifest) map[string]uint64 {
	out := map[string]uint64{}
	maps.Copy(out, op.Stopped)
	for k, v := range stopped {
		if v > out[k] {
			out[k] = v
		}
	}
	if ref != nil {
		count := map[string]uint64{}
		for _, c := range ref.Containers {
			if c.Service != "" {
				count[c.Service]++
			}
		}
		for k, v := range count {
			if v > out[k] {
				out[k] = v
			}
		}
	}
	return out
}

// undoPlacements takes back what an interrupted swarm-mode restore of m may have
// placed on op.Nodes (every slot's placement, unused, on every candidate node), drops
// the copies it sent there and removes the placement constraints it added.
// Best effort: a placement that cannot be taken back expires at its deadline.
func (s *Restores) undoPlacements(ctx context.Context, op *store.Operation, m *store.Manifest) {
	if op.Mode != api.ModeSwarm || m == nil {
		return
	}
	plan, replicas, err := PlanSlots(m)
	if err != nil {
		return
	}
	for _, n := range op.Nodes {
		for _, p := range plan {
			back := ""
			keeps := n == p.Home || hasCopy(p.Old, n) // copies.go: a replica goes back and stays
			if keeps {
				back = p.Set
			}
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := s.nodes.Unplace(cctx, n, node.UnplaceRequest{Service: p.Service, Slot: p.Slot, Set: back}); err != nil {
				s.log.Warn("rollback: take back a placement (it expires at its deadline)", "node", n, "slot", p.Key(), "err", err)
			}
			cancel()
			if !keeps {
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				_ = s.nodes.Drop(cctx, n, p.Set)
				cancel()
			}
		}
	}
	if cr, ok := s.cfg.Stopper.(stack.ConstraintRemover); ok && len(op.Constraints) > 0 {
		if err := cr.RemoveConstraints(ctx, op.Stack, slices.Sorted(maps.Keys(replicas)), op.Constraints); err != nil {
			s.log.Warn("rollback: the placement constraints stay on the services", "constraints", op.Constraints, "err", err)
		}
	}
}

// removeInterrupted removes, by name, the containers an interrupted exact restore of m
// may have created on its targets (running, network-locked, or created and never
// started), so that their names and addresses are free for what comes back.
// Best effort: the standalone listing that follows finds what is left.
func (s *Restores) removeInterrupted(ctx context.Context, op *store.Operation, m *store.Manifest) {
	if m == nil || len(op.Targets) == 0 {
		return
	}
	byNode := map[string][]string{}
	for _, c := range m.Containers {
		if t, ok := op.Targets[c.Key()]; ok {
			byNode[t] = append(byNode[t], ContainerName(m.ID, c))
		}
	}
	for node, names := range byNode {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := s.nodes.Remove(cctx, node, names); err != nil {
			s.log.Warn("rollback: remove the interrupted restore's containers (remove them by hand: docker rm -f)", "node", node, "containers", names, "err", err)
		}
		cancel()
	}
}

// recordRecovered appends rec to m's restores (m nil: nothing).
func (s *Restores) recordRecovered(ctx context.Context, m *store.Manifest, rec store.Restore) {
	if m == nil {
		return
	}
	m.Restores = append(m.Restores, rec)
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record the recovered restore", "snapshot", m.ID, "err", err)
	}
}

// splitPostCopy returns parked's post-copy sources (standalone containers migrated
// post-copy) and a copy of parked with the other containers only.
func splitPostCopy(parked *store.Manifest) (post []store.Container, rest store.Manifest) {
	rest = *parked
	rest.Containers = nil
	for _, c := range parked.Containers {
		if c.PostCopy && c.TaskID == "" {
			post = append(post, c)
			continue
		}
		rest.Containers = append(rest.Containers, c)
	}
	return post, rest
}

// activatePaused sets active again the nodes a dead coordinator's partial migration
// paused for a moment (op.Paused) and that are still paused, before anything is put
// back: a container restored on a paused node cannot join a swarm network (its
// attachment waits out the manager's 20 s, and again on every try). A node set to
// anything else meanwhile is left as it is. One that cannot be set active is logged,
// with the command that does it, and the recovery goes on.
func (s *Restores) activatePaused(ctx context.Context, op *store.Operation) {
	if len(op.Paused) == 0 {
		return
	}
	aw, ok := s.cfg.Stopper.(stack.AvailabilityWriter)
	if !ok {
		s.log.Error("nodes paused by a dead coordinator's migration, and this coordinator cannot set them active: set them active by hand (docker node update --availability active NODE)", "operation", op.ID, "nodes", op.Paused)
		return
	}
	avail, err := aw.NodeAvailabilities(ctx)
	if err != nil {
		s.log.Error("cannot read the nodes' availability to set active again those a dead coordinator's migration paused: set them active by hand (docker node update --availability active NODE)", "operation", op.ID, "nodes", op.Paused, "err", err)
		return
	}
	for _, n := range op.Paused {
		if avail[n] != stack.AvailabilityPause {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := aw.UpdateNodeAvailability(cctx, n, stack.AvailabilityActive)
		cancel()
		if err != nil {
			s.log.Error("cannot set active again a node a dead coordinator's migration paused: set it active by hand", "operation", op.ID, "node", n, "command", "docker node update --availability active "+n, "err", err)
			s.event(ctx, api.Event{ID: op.Snapshot, Phase: "warning", Message: fmt.Sprintf("node %s stays paused (paused for a moment by the migration whose coordinator died): %v; set it active: docker node update --availability active %s", n, err, n)})
			continue
		}
		s.log.Info("set active again a node a dead coordinator's migration had paused", "operation", op.ID, "node", n)
	}
}

// splitNeverEnded splits rest (a partial migration's parked containers, post-copy
// sources apart) into the swarm tasks whose end op's dead coordinator never began
// (their service not in op.Ending while it was still stopping: they were parked,
// then released at their hold's deadline or still parked) and the others. A
// journal without the replicas (Stopped, journaled before any end) was written by
// an older coordinator that journaled no Ending: all count as ended.
func splitNeverEnded(op *store.Operation, rest *store.Manifest) (kept, run store.Manifest) {
	kept, run = *rest, *rest
	kept.Containers, run.Containers = nil, nil
	for _, c := range rest.Containers {
		if c.TaskID != "" && op.Step == StepStopping && op.Stopped != nil && !slices.Contains(op.Ending, c.Service) {
			kept.Containers = append(kept.Containers, c)
			continue
		}
		run.Containers = append(run.Containers, c)
	}
	return kept, run
}

// finishMoveOut finishes, for a dead coordinator's partial migration, taking the
// moved swarm tasks of each service it began to end (op.Ending) out of swarm's
// hands, as its stop would have (moveTasksOut): they are ended (again, in case),
// then, once swarm reports them ended and the replacements it started for them (if
// any) on a node the migration did not pause, the service is scaled down by the
// moved slots from the replicas journaled (op.Stopped), which removes those
// replacements. Repeating it is harmless (a scale to the same replicas). Without it,
// the put-back that follows would run each moved container beside swarm's fresh
// replacement of it: two holders for one slot (fault seed 98). A wait that times
// out (or ends with ctx) is logged and the scale-down done all the same (ctx's end
// does not stop it); one that cannot be done is logged with the command that does
// it.
func (s *Restores) finishMoveOut(ctx context.Context, op *store.Operation, parked *store.Manifest) {
	if len(op.Ending) == 0 {
		return
	}
	sw, _ := s.cfg.Stopper.(stack.Swarm)
	ss, _ := s.cfg.Stopper.(ServiceStopper)
	if sw == nil || ss == nil {
		s.log.Error("a dead coordinator's partial migration ended swarm tasks, and this coordinator cannot scale their services: scale them down by the moved slots by hand", "operation", op.ID, "services", op.Ending)
		return
	}
	_, rest := splitPostCopy(parked)
	bySvc := map[string][]store.Container{}
	for _, c := range rest.Containers {
		if c.TaskID != "" && slices.Contains(op.Ending, c.Service) {
			bySvc[c.Service] = append(bySvc[c.Service], c)
		}
	}
	for _, svc := range slices.Sorted(maps.Keys(bySvc)) {
		cs := bySvc[svc]
		prior := op.Stopped[svc]
		if prior < uint64(len(cs)) {
			s.log.Error("a dead coordinator's partial migration did not journal the replicas of a service whose tasks it ended: check 'docker service ps' for a duplicate of a moved slot", "operation", op.ID, "service", svc)
			continue
		}
		sub := *parked
		sub.Containers = cs
		outs, err := s.stopOutcomes(ctx, &sub, false)
		if err != nil {
			s.log.Debug("finishing the move-out: moved tasks (ended by the dead coordinator)", "service", svc, "err", err)
		}
		// A moved task released after its dump ran on as a swarm task: it is not
		// ended, and the scale-down leaves its slot (the put-back keeps it).
		cs = slices.DeleteFunc(slices.Clone(cs), func(c store.Container) bool { return outs[c.ContainerID].Outcome == node.StopRunning })
		if len(cs) == 0 {
			continue
		}
		movedIDs, slots := map[string]bool{}, map[string]bool{}
		for _, c := range cs {
			movedIDs[c.TaskID], slots[c.Key()] = true, true
		}
		wctx, cancel := context.WithTimeout(ctx, partialWait)
		err = waitTasks(wctx, sw, op.Stack, func(ts []stack.Task) bool {
			for _, t := range ts {
				switch {
				case movedIDs[t.TaskID]:
					if t.State == "running" || t.State == "starting" || t.DesiredState == "running" {
						return false
					}
				case slots[t.Key()] && (t.DesiredState == "running" || t.DesiredState == "ready"):
					if slices.Contains(op.Paused, t.Node) {
						return false
					}
				}
			}
			return true
		})
		cancel()
		if err != nil {
			s.log.Warn("finishing the move-out: swarm does not report the moved tasks ended, or their replacements placed; scaling down all the same", "service", svc, "err", err)
		}
		down := prior - uint64(len(cs))
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		err = ss.ScaleServices(cctx, op.Stack, map[string]uint64{svc: down}, nil)
		cancel()
		if err != nil {
			s.log.Error("finishing the move-out: cannot scale the service down by the moved slots: do it by hand", "service", svc, "command", fmt.Sprintf("docker service scale %s=%d", svc, down), "err", err)
			s.event(ctx, api.Event{ID: op.Snapshot, Phase: "warning", Message: fmt.Sprintf("swarm may run fresh replacements of the moved tasks of %s beside the containers put back: scale it down (docker service scale %s=%d): %v", svc, svc, down, err)})
			continue
		}
		wctx, cancel = context.WithTimeout(ctx, partialWait)
		err = waitTasks(wctx, sw, op.Stack, func(ts []stack.Task) bool {
			for _, t := range ts {
				if slots[t.Key()] && !movedIDs[t.TaskID] && (t.DesiredState == "running" || t.DesiredState == "ready") {
					return false
				}
			}
			return true
		})
		cancel()
		if err != nil {
			s.event(ctx, api.Event{ID: op.Snapshot, Phase: "warning", Message: fmt.Sprintf("swarm still wants a moved slot of %s running after the scale-down (%v): check 'docker service ps %s' for a duplicate", svc, err, svc)})
		}
		s.log.Info("finished taking a dead coordinator's moved tasks out of swarm's hands", "operation", op.ID, "service", svc, "replicas", down)
	}
}

// preparedAt returns cs as releasePrepared takes them (each on a node to ask): on the
// node op's pre-flight had prepare each (its journaled target), or, when op died
// before journaling its targets, on every live node (a node asked to release what it
// does not hold skips it). A restore prepares nothing on the snapshot's own nodes.
func (s *Restores) preparedAt(op *store.Operation, cs []store.Container) []store.Container {
	var out []store.Container
	for _, c := range cs {
		at := store.Container{Service: c.Service, Slot: c.Slot}
		if n := op.Targets[c.Key()]; n != "" {
			at.Node = n
			out = append(out, at)
			continue
		}
		if len(op.Targets) > 0 {
			continue
		}
		for _, w := range s.live() {
			at.Node = w.Node
			out = append(out, at)
		}
	}
	return out
}

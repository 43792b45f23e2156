package coordinator

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// recover finishes what a previous coordinator left: every manifest neither committed
// nor aborted is aborted through its algorithm's RecoverCoordinator (presumed abort),
// which releases every container it held; then every restore or migration it
// journaled is finished or rolled back (RecoverOperations).
func (s *Service) recover(ctx context.Context) error {
	hs, err := s.cfg.Store.Headers(ctx, "")
	if err != nil {
		return err
	}
	var unfinished []*store.Manifest
	nodes := map[string]bool{}
	for _, h := range hs {
		if h.State.Final() || h.State == store.StateCorrupt {
			continue
		}
		m, err := s.cfg.Store.Get(ctx, h.ID)
		if err != nil {
			s.log.Error("cannot read unfinished snapshot", "snapshot", h.ID, "err", err)
			continue
		}
		unfinished = append(unfinished, m)
		for _, c := range m.Containers {
			nodes[c.Node] = true
		}
	}
	if len(unfinished) > 0 {
		s.awaitAgents(ctx, nodes)
	}
	for _, m := range unfinished {
		if err := s.recoverOne(ctx, m); err != nil {
			s.log.Error("cannot recover snapshot", "snapshot", m.ID, "err", err)
		}
	}
	// Then the restores and migrations it journaled (coordinator/restore/recoverops.go): their parked
	// snapshots are final now (committed, or aborted just above).
	return s.RecoverOperations(ctx)
}

// breakStaleLocks breaks the stack locks a dead coordinator held when this one began
// to lead (stale) and recovery left in place: a lock whose snapshot had committed, or
// was not found, when its holder died (e.g. killed while copying a committed
// snapshot's sets to their replicas, before its unlock). Without this the stack
// refused every snapshot, restore and migration until the lock's lease lapsed, which
// an embedded etcd restarted with its coordinator extends. A lock whose owner changed
// meanwhile (recovery took it over) is left alone (BreakLock compares the owner).
func (s *Service) breakStaleLocks(ctx context.Context, stale []store.LockInfo) {
	for _, l := range stale {
		if h, err := s.cfg.Store.LockHolder(ctx, l.Stack); err != nil || h != l.Owner {
			continue // released, or taken over by the recovery of its operation
		}
		if err := s.cfg.Store.BreakLock(ctx, l.Stack, l.Owner); err != nil {
			s.log.Warn("cannot break a dead coordinator's stack lock (it lapses with its lease)", "stack", l.Stack, "owner", l.Owner, "err", err)
			continue
		}
		s.log.Info("broke a dead coordinator's stack lock", "stack", l.Stack, "owner", l.Owner)
	}
}

// awaitAgents waits until every node in nodes has a live agent (a heartbeat since this
// coordinator started), at most RecoverWait; the nodes still silent then are logged
// (their workers' watchdogs release their containers).
func (s *Service) awaitAgents(ctx context.Context, nodes map[string]bool) {
	t0 := time.Now()
	deadline := time.NewTimer(s.cfg.RecoverWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		heard := map[string]bool{}
		for _, w := range s.live.live() {
			heard[w.Node] = true
		}
		var missing []string
		for n := range nodes {
			if !heard[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			s.log.Info("agents of the unfinished snapshots' nodes are back", "nodes", len(nodes), "waited_s", time.Since(t0).Seconds())
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			sort.Strings(missing)
			s.log.Warn("nodes of unfinished snapshots not heard from: aborting without them (their workers' watchdogs release their containers at the deadline)",
				"nodes", missing, "waited_s", time.Since(t0).Seconds())
			return
		case <-tick.C:
		}
	}
}

func (s *Service) recoverOne(ctx context.Context, m *store.Manifest) error {
	// The dead coordinator's stack lock names this snapshot: once it is aborted, the
	// lock is broken at once instead of waiting for its lease (which etcd extends when it
	// restarts, as the embedded one does with its coordinator).
	defer func() {
		if err := s.cfg.Store.BreakLock(ctx, m.Stack, m.Coordinator+"/"+m.ID); err != nil {
			s.log.Warn("cannot break the dead coordinator's stack lock (it lapses with its lease)", "stack", m.Stack, "err", err)
		}
	}()
	log := s.log.With("snapshot", m.ID, "stack", m.Stack, "state", m.State)
	log.Warn("found an unfinished snapshot of a previous coordinator: aborting it and releasing its containers")
	r := newRun(s, m, nil, nil, s.cfg.SnapshotTimeout)
	defer func() {
		s.recordRecovered(r.m) // metrics.go
		if r.m.State == store.StateAborted {
			// Its partial image sets are collected like any aborted snapshot's.
			s.collectAborted(ctx, r.m)
		}
	}()
	// Agents that restarted lost their plans; resend them (best effort), with Exit as
	// the snapshot had it: a plan without it would make the agents forget that the
	// containers are parked since their dump, and the abort would leave them held
	// (found by the fault-injection test: a restore's checkpoint, network-locked until
	// the hold's deadline).
	_ = r.sendPlans(ctx, !m.LeaveRunning)
	reason := fmt.Sprintf("coordinator %s restarted during the snapshot", m.Coordinator)
	alg, err := s.cfg.Algorithms(m.Algorithm)
	if err == nil && len(m.Record) > 0 {
		mach, rerr := alg.RecoverCoordinator(algorithms.Config{Timeout: r.ticks(s.cfg.SnapshotTimeout), FirstEpoch: m.Epoch}, m.Record)
		if rerr == nil {
			r.mach = mach
			for i := 0; i < 8 && mach.HasReady() && !r.decided; i++ {
				r.process(ctx, time.Now())
			}
			if r.decided {
				return nil
			}
			log.Warn("recovered algorithm did not decide; aborting directly")
		} else {
			log.Warn("cannot rebuild the algorithm from its record; aborting directly", "err", rerr)
		}
	}
	// No usable record: abort and tell every container directly.
	r.abort(ctx, reason)
	for _, c := range m.Containers {
		r.send(ctx, protocol.Envelope{Version: protocol.Version, Type: protocol.TypeAbort, Snapshot: m.ID, Epoch: m.Epoch,
			From: protocol.Coordinator, To: protocol.ContainerAddr(c.ContainerID), Body: &protocol.Decision{Reason: reason}})
	}
	return nil
}

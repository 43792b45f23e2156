package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// A restore replaces what runs of a stack. What runs has state of its own, which a
// restore that fails after the stop must not lose: before anything is stopped, the
// running stack is checkpointed (a blocking snapshot with Exit: its containers wait
// frozen and locked for the commit, then end: worker/agent park.go), and a failure puts
// that checkpoint back on the original nodes (putBack), as a migration's rollback
// does. Only if that fails too are the services started fresh from their images.

// checkpointRunning snapshots what runs of m's stack as snapshot id, holding held (the
// stack's lock), before a restore of m replaces it. nil when nothing runs. A checkpoint
// that cannot be taken refuses the restore with nothing changed.
func (s *Restores) checkpointRunning(ctx context.Context, m *store.Manifest, held store.Lock, id string) (*store.Manifest, error) {
	st, err := s.cfg.Resolver.Resolve(ctx, m.Stack)
	switch {
	case errors.Is(err, stack.ErrNotFound) || (err == nil && len(st.Containers) == 0):
		return nil, nil
	case err != nil:
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused, nothing was changed: cannot tell what runs of stack %s to checkpoint it first: %v", m.ID, m.Stack, err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "checkpointing", Message: fmt.Sprintf("checkpointing the %d running containers of stack %s first, so that a failed restore puts them back with their state", len(st.Containers), m.Stack)})
	t0 := time.Now()
	before, err := s.cfg.Host.Snapshot(ctx, api.SnapshotRequest{ID: id, Stack: m.Stack, Algorithm: DefaultAlgorithm, Exit: true}, nil, held)
	if err != nil {
		code := api.CodeFailed
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeNoWorker {
			code = ae.Code
		}
		return nil, api.Errorf(code, "restore of %s refused, nothing was changed (stack %s runs as before): its running containers could not be checkpointed first, so a failed restore could not put them back: %v; to replace them anyway, losing their current state, add --discard-running",
			m.ID, m.Stack, err)
	}
	before.Purpose = "before restore of " + m.ID
	if err := s.cfg.Store.Update(ctx, before); err != nil {
		s.log.Warn("cannot record the purpose of a snapshot", "snapshot", before.ID, "err", err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "checkpointed", Message: "the running stack is kept as snapshot " + before.ID, MS: time.Since(t0).Milliseconds()})
	return before, nil
}

// putBack restores before (the checkpoint of what ran) on its original nodes after a
// restore of m onto targets failed with cause once the stack was stopped
// (putBackOriginals). If that fails too, the services are started again at the
// replicas they had (stopped), fresh.
func (s *Restores) putBack(ctx context.Context, m, before *store.Manifest, targets map[string]string, stopped map[string]uint64, cause error) error {
	s.event(ctx, api.Event{ID: m.ID, Phase: "putting-back", Message: "restore failed: putting the stack back from " + before.ID + ": " + cause.Error()})
	note, err := s.putBackOriginals(ctx, before, m, targets)
	if err != nil {
		err = fmt.Errorf("restore failed (%v) and putting back what ran from snapshot %s failed too (%w); to put it back by hand: 'swarmckpt restore %s --on-original'",
			cause, before.ID, err, before.ID)
		return s.scaleBack(ctx, m, stopped, err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "put-back", Message: "the stack's containers run again where they were, with their state, from " + before.ID})
	return api.Errorf(api.CodeFailed, "restore of %s failed, so the stack was put back as it was: its containers run again on their nodes with the state they had (from snapshot %s, taken just before%s): %v",
		m.ID, before.ID, withNote(note), cause)
}

// putBackOriginals restores parked (the checkpoint of what ran, or a failed
// migration's own snapshot) on its containers' original nodes after a restore of
// failed onto targets did not complete. It works over whatever that restore and the
// stop left, and can be run again: first it removes, by name, the containers the
// failed restore may have created on its targets (restored, network-locked, or
// created and never started: a node that restarted during the restore's undo keeps
// them), then every standalone container of the stack (an earlier exact restore's
// originals ended by the stop, which hold their addresses) but the originals the stop
// did not end: those still parked are released (their state is parked's), those
// released after their dump ran on (a restarted agent, a hold's deadline) and are
// never removed or replaced (originals.go); then it restores the rest of parked,
// trying twice. note names the originals kept, and those whose nodes did not answer
// (left as they are). The node calls are repeated while an
// agent or worker restarts (AgentNodes).
func (s *Restores) putBackOriginals(ctx context.Context, parked, failed *store.Manifest, targets map[string]string) (note string, err error) {
	ctx = context.WithoutCancel(ctx)
	if failed != nil && len(targets) > 0 {
		byNode := map[string][]string{}
		for _, c := range failed.Containers {
			if t, ok := targets[c.Key()]; ok {
				byNode[t] = append(byNode[t], ContainerName(failed.ID, c))
			}
		}
		for nodeName, names := range byNode {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := s.nodes.Remove(cctx, nodeName, names); err != nil {
				s.log.Warn("put back: remove the failed restore's containers (remove them by hand: docker rm -f)", "node", nodeName, "containers", names, "err", err)
			}
			cancel()
		}
	}
	// The standalone originals (an earlier exact restore's) the stop did not end are
	// kept: still parked, they are released (their state is the checkpoint's);
	// released since their dump, they ran on and are never removed or replaced
	// (originals.go). The swarm tasks went with their services' scale to 0: every one
	// is put back.
	var standalone, tasks []store.Container
	for _, c := range parked.Containers {
		if c.TaskID == "" {
			standalone = append(standalone, c)
		} else {
			tasks = append(tasks, c)
		}
	}
	o := s.settleOriginals(ctx, only(parked, standalone))
	back := only(parked, append(tasks, o.gone...))
	orig := map[string]string{}
	for _, c := range back.Containers {
		orig[c.Key()] = c.Node
	}
	for try := 1; try <= 2; try++ {
		if _, lerr := s.removeStandaloneExcept(ctx, parked, o.kept); lerr != nil {
			s.log.Warn("put back: removing the stack's standalone containers", "stack", parked.Stack, "err", lerr)
		}
		if len(back.Containers) == 0 {
			break
		}
		s.freeAddresses(ctx, back)
		if _, err = s.restorer().Restore(ctx, back, orig); err == nil {
			break
		}
		s.log.Warn("put back: restoring the parked snapshot on the original nodes failed", "snapshot", parked.ID, "try", try, "err", err)
	}
	if err == nil && len(o.kept) > 0 {
		s.event(ctx, api.Event{ID: parked.ID, Phase: "put-back", Message: fmt.Sprintf("%d of the originals were not ended: they run on where they were, not replaced from %s%s", len(o.kept), parked.ID, withNote(o.note()))})
	}
	// Those whose nodes could not tell are named in note only: an error would scale
	// the services back, fresh, beside whatever of them still runs.
	return o.note(), err
}

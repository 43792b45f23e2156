package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
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
			if err := s.cfg.Store.Update(ctx, m); err != nil {
				s.log.Warn("cannot store verdict", "snapshot", m.ID, "err", err)
			}
		}
		return &api.InspectResult{Snapshot: m}, nil
	}))
	add(api.Serve(t, api.OpRemove, func(ctx context.Context, req *api.RemoveRequest) (*api.RemoveResult, error) {
		if s.active(req.ID) != nil {
			return nil, api.Errorf(api.CodeBusy, "snapshot %s is still running: abort it first", req.ID)
		}
		return s.remove(ctx, req.ID)
	}))
	add(api.Serve(t, api.OpStatus, func(ctx context.Context, req *api.StatusRequest) (*api.StatusResult, error) {
		return &api.StatusResult{Coordinator: s.cfg.Name, Workers: s.live.live()}, nil
	}))
	add(api.Serve(t, api.OpRestore, func(ctx context.Context, req *api.RestoreRequest) (*api.RestoreResult, error) {
		return s.Restore(ctx, *req)
	}))
	add(api.Serve(t, api.OpMigrate, func(ctx context.Context, req *api.MigrateRequest) (*api.MigrateResult, error) {
		return s.Migrate(ctx, *req)
	}))
	return out
}

// Restore restores a committed snapshot on target nodes.
func (s *Service) Restore(ctx context.Context, req api.RestoreRequest) (*api.RestoreResult, error) {
	m, err := s.cfg.Store.Get(ctx, req.ID)
	if err != nil {
		return nil, storeErr(err)
	}
	if s.cfg.Restorer == nil {
		return nil, api.Errorf(api.CodeFailed, "restore is not available: this coordinator has no restorer (the workers' restore primitive is not wired yet)")
	}
	if m.State != store.StateCommitted {
		return nil, api.Errorf(api.CodeBadRequest, "snapshot %s is %s: only committed snapshots can be restored", m.ID, m.State)
	}
	if err := m.Complete(); err != nil {
		return nil, api.Errorf(api.CodeCorrupt, "%v", err)
	}
	switch req.Mode {
	case "", api.ModeExact:
	case api.ModeSwarm:
		return s.restoreSwarm(ctx, m, req) // swarmrestore.go
	default:
		return nil, api.Errorf(api.CodeBadRequest, "unknown restore mode %q (use %s or %s)", req.Mode, api.ModeExact, api.ModeSwarm)
	}
	var nodes []string
	for _, w := range s.live.live() {
		nodes = append(nodes, w.Node)
	}
	targets, err := PlanTargets(m, req.Targets, nodes, req.OnOriginal)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if s.cfg.Stopper != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "stopping", Message: "scaling the running services of stack " + m.Stack + " to 0"})
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.cfg.Stopper.StopStack(sctx, m.Stack)
		cancel()
		if err != nil {
			return nil, api.Errorf(api.CodeFailed, "stop the running stack before restoring: %v", err)
		}
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: describeTargets(targets)})
	ids, rerr := s.cfg.Restorer.Restore(ctx, m, targets)
	rec := store.Restore{At: time.Now().UTC(), Targets: targets, OK: rerr == nil}
	if rerr != nil {
		rec.Error = rerr.Error()
	}
	m.Restores = append(m.Restores, rec)
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record restore", "snapshot", m.ID, "err", err)
	}
	if rerr != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restore-failed", Message: rerr.Error()})
		return nil, api.Errorf(api.CodeFailed, "restore of %s: %v", m.ID, rerr)
	}
	res := &api.RestoreResult{ID: m.ID, Targets: targets, Containers: ids, TotalMS: time.Since(start).Milliseconds()}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", MS: res.TotalMS})
	return res, nil
}

// Migrate moves a stack cold: snapshot (containers stopped after their dump), restore
// on the target nodes; if the restore fails, the originals are restored where they
// were (rollback).
func (s *Service) Migrate(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error) {
	if (req.To == "") == (req.From == "") {
		return nil, api.Errorf(api.CodeBadRequest, "give exactly one of --to NODE or --from NODE")
	}
	if s.cfg.Restorer == nil {
		return nil, api.Errorf(api.CodeFailed, "migrate is not available: this coordinator has no restorer (the workers' restore primitive is not wired yet)")
	}
	m, err := s.Snapshot(ctx, api.SnapshotRequest{ID: req.ID, Stack: req.Stack, Algorithm: req.Algorithm, Exit: true})
	if err != nil {
		return &api.MigrateResult{Snapshot: m}, err
	}
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
	if req.Mode == api.ModeSwarm {
		// Swarm places the tasks: steer it with a constraint (kept on the services).
		c := "node.hostname==" + req.To
		if req.From != "" {
			c = "node.hostname!=" + req.From
		}
		res, err := s.Restore(ctx, api.RestoreRequest{ID: m.ID, Mode: api.ModeSwarm, Constraints: []string{c}})
		if err != nil {
			return s.rollback(ctx, m, err)
		}
		return &api.MigrateResult{Snapshot: m, Restore: res}, nil
	}
	plan, err := PlanTargets(m, targets, nodes, true)
	if err != nil {
		return s.rollback(ctx, m, err)
	}
	res, err := s.Restore(ctx, api.RestoreRequest{ID: m.ID, Targets: plan, OnOriginal: true})
	if err != nil {
		return s.rollback(ctx, m, err)
	}
	return &api.MigrateResult{Snapshot: m, Restore: res}, nil
}

func (s *Service) rollback(ctx context.Context, m *store.Manifest, cause error) (*api.MigrateResult, error) {
	orig := map[string]string{}
	for _, c := range m.Containers {
		orig[c.Key()] = c.Node
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "rollback", Message: cause.Error()})
	if _, err := s.cfg.Restorer.Restore(ctx, m, orig); err != nil {
		return &api.MigrateResult{Snapshot: m}, api.Errorf(api.CodeFailed,
			"migration failed (%v) and the rollback onto the original nodes failed too (%v): restore it by hand with 'swarmckpt restore %s --on-original'", cause, err, m.ID)
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
	n, left := s.dropSets(ctx, sets)
	res.ImagesRemoved = n
	res.Warnings = append(res.Warnings, left...)
	if err := s.cfg.Store.Delete(ctx, id); err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

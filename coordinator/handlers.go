package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

type subErr struct {
	sub bus.Subscription
	err error
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
		ms, err := s.cfg.Store.Headers(ctx, req.Stack)
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
			if restore.PagesNotVerified(m) != "" {
				// A direct migration's page digests not in the record yet: from the
				// node holding the set, waiting for its hash (pages.go).
				fm, ferr := restore.FillPages(ctx, s.cfg.Store, s.pagesNodes(), m.ID, pagesAsk)
				if fm == nil {
					return nil, storeErr(ferr)
				}
				m = fm
				if why := restore.PagesNotVerified(m); why != "" {
					m.Verdict = &store.Verdict{CheckedAt: time.Now().UTC(), Error: "not verified: " + why}
					return &api.InspectResult{Snapshot: m}, nil
				}
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
	add(api.Serve(t, api.OpNode, func(ctx context.Context, req *api.NodeRequest) (*api.NodeResult, error) {
		return s.SetNode(ctx, *req) // nodedrain.go
	}))
	add(api.Serve(t, api.OpHeld, func(ctx context.Context, req *api.HeldRequest) (*api.HeldResult, error) {
		return s.Held(ctx, req.ID) // released.go
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
	return s.restores.Restore(ctx, req) // coordinator/restore/handlers.go
}

// Migrate moves a stack cold (coordinator/restore/handlers.go: Restores.Migrate).
func (s *Service) Migrate(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error) {
	if err := validMigrateRequest(req); err != nil { // validate.go
		return nil, err
	}
	res, err := s.restores.Migrate(ctx, req)
	if res != nil && res.Snapshot != nil && res.Snapshot.PagesPending > 0 {
		s.kickPages() // pages.go: the target's page digests, once it hashed them
	}
	return res, err
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
	orphans, err := s.reusedOrphans(ctx, m) // reuse.go: sets kept for m by an earlier rm
	if err != nil {
		return nil, storeErr(err)
	}
	sets = append(sets, orphans...)
	dropped, left := s.dropSets(ctx, sets)
	res.ImagesRemoved = wholeSets(sets, dropped)
	res.Warnings = append(res.Warnings, left...)
	if err := s.cfg.Store.Delete(ctx, id); err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

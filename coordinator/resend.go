package coordinator

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// A CLI whose leader died (or restarted) before answering its snapshot request sends
// the same request, with the same id and request id, to the next leader
// (api.Client.Failover). The dead leader may have begun the snapshot or not: if a
// snapshot of that id was created by that request (same RequestID), resentSnapshot
// waits until it is decided (this leader's recovery aborts what the dead one left
// running) and answers with its outcome as the first answer would have; otherwise
// the request is taken as a new one, once: the snapshot's id is unique in the store.

// resentPoll is how often resentSnapshot reads the snapshot it waits for.
const resentPoll = 200 * time.Millisecond

// resentSnapshot answers req when a snapshot of req.ID was begun by the same request
// (ok true); ok is false when req carries no request id or no such snapshot exists.
func (s *Service) resentSnapshot(ctx context.Context, req api.SnapshotRequest) (*store.Manifest, bool, error) {
	if req.RequestID == "" {
		return nil, false, nil
	}
	m, err := s.cfg.Store.Get(ctx, req.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, api.Errorf(api.CodeFailed, "snapshot %s: %v", req.ID, err)
	}
	if m.RequestID != req.RequestID {
		return nil, false, nil // another request's: refused as a duplicate id
	}
	log := s.log.With("snapshot", m.ID, "begun_by", m.Coordinator)
	log.Info("snapshot request sent again (the coordinator that had it ended before answering): answering with the outcome of the snapshot it began")
	wait := s.cfg.Hold.Max + s.cfg.RecoverWait + time.Minute // the longest a snapshot may run, and its recovery
	deadline := time.Now().Add(wait)
	for !m.State.Final() {
		if time.Now().After(deadline) {
			return m, true, api.Errorf(api.CodeFailed, "snapshot %s, begun by coordinator %s for this request, is still %s after %s: check it with 'swarmckpt inspect %s'",
				m.ID, m.Coordinator, m.State, wait, m.ID)
		}
		select {
		case <-ctx.Done():
			return m, true, api.Errorf(api.CodeFailed, "snapshot %s: %v", m.ID, ctx.Err())
		case <-time.After(resentPoll):
		}
		if m, err = s.cfg.Store.Get(ctx, req.ID); err != nil {
			return nil, true, api.Errorf(api.CodeFailed, "snapshot %s: %v", req.ID, err)
		}
	}
	if m.State == store.StateCommitted {
		return m, true, nil
	}
	if m.State != store.StateAborted {
		return m, true, api.Errorf(api.CodeFailed, "snapshot %s is %s: %s", m.ID, m.State, m.Reason)
	}
	if held := s.awaitReleased(context.WithoutCancel(ctx), m); len(held) > 0 {
		return m, true, api.Errorf(api.CodeAborted, "snapshot %s aborted: %s; still held after %s:\n  - %s", m.ID, m.Reason, releaseWait, strings.Join(held, "\n  - "))
	}
	return m, true, api.Errorf(api.CodeAborted, "snapshot %s aborted: %s; every container was released", m.ID, m.Reason)
}

package coordinator

import (
	"context"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

// The pages loop fills the page digests a direct migration's record left pending
// (coordinator/restore/pages.go: the target hashes the pages after the restore and
// keeps their digests with the set). It runs while this coordinator leads: a pass at
// once (what a coordinator killed before it filled them left), after each direct
// migration (kickPages), and every pagesEvery. A pass reads the snapshots' headers
// (PagesPending), skips a snapshot whose stack is locked (a migration or restore in
// progress records it; the pass after it fills it) and fills the others one by one.

// pagesEvery is how often the pages loop looks for pending page digests.
const pagesEvery = 30 * time.Second

// pagesAsk bounds one node's answer in a pass: the wait for its hash included.
const pagesAsk = 5 * time.Minute

// kickPages makes the pages loop run a pass now (it runs one at a time; a kick
// during a pass makes another pass follow it).
func (s *Service) kickPages() {
	select {
	case s.pagesKick <- struct{}{}:
	default:
	}
}

// runPages runs the pages loop until ctx ends.
func (s *Service) runPages(ctx context.Context) {
	t := time.NewTicker(pagesEvery)
	defer t.Stop()
	for {
		s.fillPendingPages(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.pagesKick:
		}
	}
}

// fillPendingPages is one pass of the pages loop.
func (s *Service) fillPendingPages(ctx context.Context) {
	hs, err := s.cfg.Store.Headers(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("pages loop: cannot list the snapshots", "err", err)
		}
		return
	}
	for _, h := range hs {
		if h.PagesPending == 0 || h.State != store.StateCommitted {
			continue
		}
		if holder, err := s.cfg.Store.LockHolder(ctx, h.Stack); err != nil || holder != "" {
			continue // a migration or restore of the stack records it now: next pass
		}
		m, err := restore.FillPages(ctx, s.cfg.Store, s.pagesNodes(), h.ID, pagesAsk)
		switch {
		case ctx.Err() != nil:
			return
		case m == nil:
			s.log.Warn("pages loop: cannot read a snapshot whose page digests are pending", "snapshot", h.ID, "err", err)
		case err != nil:
			s.log.Info("page digests of a direct migration still pending; asking again later", "snapshot", h.ID, "err", err)
		default:
			if why := restore.PagesNotVerified(m); why != "" {
				s.log.Warn("a direct migration's set cannot be verified: its memory pages were never hashed", "snapshot", h.ID, "why", why)
			} else {
				s.log.Info("page digests of a direct migration recorded", "snapshot", h.ID)
			}
		}
	}
}

// pagesNodes is how the pages loop and inspect reach the nodes' agents.
func (s *Service) pagesNodes() restore.Checks {
	return restore.AgentNodes{Bus: s.cfg.Bus, Agent: s.AgentAlive}
}

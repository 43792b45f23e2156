package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Several coordinators on one store (Config.Elector): one leads, the others wait as
// standbys. Only the leader subscribes to the CLI's API subjects, recovers the
// snapshots a dead leader left unfinished and runs the policy reconciler, so a
// coordinator that starts while another leads never touches that leader's work. A
// standby leads once the leader's election lease lapsed (etcdstore.DefaultLeaderTTL
// after its death) and then recovers as a restarted coordinator does (recover.go).

// candidate is this process in the election.
func (s *Service) candidate() store.Candidate {
	return store.Candidate{Name: s.cfg.Name, Host: s.cfg.Host, PID: s.cfg.PID, Started: s.started.UTC()}
}

// soleLeader is the leadership of a coordinator without an Elector: never lost.
type soleLeader struct{}

func (soleLeader) Lost() <-chan struct{}        { return nil }
func (soleLeader) Resign(context.Context) error { return nil }

// campaign waits until this coordinator leads; nil, nil when ctx ended first.
func (s *Service) campaign(ctx context.Context) (store.Leadership, error) {
	if s.cfg.Elector == nil {
		return soleLeader{}, nil
	}
	s.log.Info("standby: waiting to lead", "name", s.cfg.Name)
	l, err := s.cfg.Elector.Campaign(ctx, s.candidate())
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("coordinator %s: leader election: %w", s.cfg.Name, err)
	}
	return l, nil
}

// leading says whether this coordinator leads now and since when.
func (s *Service) leading() (bool, time.Time) {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return !s.leaderSince.IsZero(), s.leaderSince
}

// lead serves as leader until ctx ends or the leadership is lost.
func (s *Service) lead(ctx context.Context, l store.Leadership) error {
	s.leaderMu.Lock()
	s.leaderSince = time.Now().UTC()
	s.leaderMu.Unlock()
	defer func() {
		s.leaderMu.Lock()
		s.leaderSince = time.Time{}
		s.leaderMu.Unlock()
	}()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	go func() {
		select {
		case <-l.Lost():
			close(lost)
			cancel()
		case <-lctx.Done():
		}
	}()
	// Every stack lock held now is a dead coordinator's: this one leads and has taken
	// none yet, and standbys take none (listed before the CLI is served, so that no
	// lock this leader takes is among them).
	stale, lerr := s.cfg.Store.ListLocks(lctx)
	if lerr != nil {
		s.log.Warn("cannot list the stack locks a previous coordinator left (they lapse with their leases)", "err", lerr)
	}
	var apiSubs []bus.Subscription
	unsubscribe := func() {
		for _, sub := range apiSubs {
			_ = sub.Unsubscribe()
		}
		apiSubs = nil
	}
	defer unsubscribe()
	for _, se := range s.serveAPI() {
		if se.err != nil {
			unsubscribe()
			s.resign(l)
			return fmt.Errorf("coordinator: subscribe: %w", se.err)
		}
		apiSubs = append(apiSubs, se.sub)
	}
	if s.cfg.Elector != nil {
		s.log.Info("leading: serving the CLI; recovering what a previous coordinator left unfinished", "name", s.cfg.Name)
	}
	if err := s.recover(lctx); err != nil {
		s.log.Error("recovery of unfinished snapshots failed", "err", err)
	}
	s.breakStaleLocks(lctx, stale) // recover.go
	s.log.Info("coordinator ready", "name", s.cfg.Name)
	drainDone := make(chan struct{})
	go func() { defer close(drainDone); s.runDrain(lctx) }() // drain.go
	defer func() { <-drainDone }()
	pagesDone := make(chan struct{})
	go func() { defer close(pagesDone); s.runPages(lctx) }() // pages.go
	defer func() { <-pagesDone }()
	xlateDone := make(chan struct{})
	go func() { defer close(xlateDone); s.runXlates(lctx) }() // xlates.go
	defer func() { <-xlateDone }()
	recDone := make(chan struct{})
	if s.rec != nil {
		// After recovery: the scheduled runs a predecessor left are final by now.
		go func() { defer close(recDone); s.rec.run(lctx) }()
	} else {
		close(recDone)
	}
	<-lctx.Done()
	var isLost bool
	select {
	case <-lost:
		isLost = true
	default:
	}
	if isLost {
		// Another coordinator leads (or will within its TTL): stop answering the CLI at
		// once and abort what runs here (it cannot commit: the new leader's recovery
		// breaks this coordinator's stack locks).
		unsubscribe()
		s.log.Error("lost the leadership (election lease lapsed or etcd unreachable): aborting running snapshots and stopping", "name", s.cfg.Name)
		for _, r := range s.activeRuns() {
			r.requestAbort(fmt.Sprintf("coordinator %s lost its leadership (etcd did not renew its election lease: unreachable, or without quorum): take the snapshot again once etcd answers ('swarmckpt status' names the leader then)", s.cfg.Name))
		}
	}
	<-recDone
	for _, r := range s.activeRuns() {
		<-r.done
	}
	if isLost {
		return fmt.Errorf("coordinator %s: %w: a standby takes over; restart this one to stand by again", s.cfg.Name, store.ErrLeadershipLost)
	}
	s.resign(l)
	return nil
}

// resign hands the leadership to the next standby at once (a clean shutdown).
func (s *Service) resign(l store.Leadership) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Resign(ctx); err != nil {
		s.log.Warn("cannot resign the leadership (a standby takes over when its lease lapses)", "err", err)
	}
}

func (s *Service) activeRuns() []*run {
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := make([]*run, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	return runs
}

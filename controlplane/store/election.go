package store

import (
	"context"
	"errors"
	"time"
)

// ErrLeadershipLost says a coordinator stopped leading (its election lease lapsed or
// the store became unreachable): it must stop acting as leader at once.
var ErrLeadershipLost = errors.New("store: leadership lost")

// Candidate is one coordinator process taking part in the leader election.
type Candidate struct {
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"` // when the process started
	// Leader is set on the candidate that leads (Elector.Candidates); LeaderSince is
	// when it won.
	Leader      bool      `json:"leader,omitempty"`
	LeaderSince time.Time `json:"leader_since,omitzero"`
}

// Leadership is a won election.
type Leadership interface {
	// Lost is closed when the leadership ends without Resign (lease lapsed, store
	// unreachable).
	Lost() <-chan struct{}
	// Resign gives the leadership up; the next candidate leads at once.
	Resign(ctx context.Context) error
}

// Elector elects one leader among the coordinators that share a store. A candidate
// that dies (stops renewing its lease) drops out after the elector's lease TTL.
type Elector interface {
	// Campaign enters c and blocks until it leads (a standby meanwhile, listed by
	// Candidates), or ctx ends (ctx.Err()).
	Campaign(ctx context.Context, c Candidate) (Leadership, error)
	// Candidates lists the live candidates: the leader first (Leader set), then the
	// standbys in the order they would take over.
	Candidates(ctx context.Context) ([]Candidate, error)
}

// LockInfo is one held stack lock.
type LockInfo struct {
	Stack string `json:"stack"`
	Owner string `json:"owner"`
}

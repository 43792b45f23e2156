package restore

import (
	"context"
	"errors"
	"github.com/swarmckpt/swarmckpt/algorithms"
	"log/slog"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// DefaultAlgorithm takes the checkpoint of what runs before a restore, and is the
// algorithm of a request that names none.
const DefaultAlgorithm = "blocking"

// StreamPlan is given a snapshot's containers before anything is locked and returns,
// by container key, the worker address each container's dump streams its images to
// (a migration's targets, Migrate); containers it leaves out are dumped plainly. An
// error refuses the snapshot before anything is locked (it is aborted with it).
type StreamPlan func(m *store.Manifest) (map[string]string, error)

// SetRef is an image set on a node.
type SetRef struct{ Node, Set string }

// Host is what restores and migrations need of the coordinator that runs them: its
// snapshots, stack locks, live workers and progress events.
type Host interface {
	// Snapshot takes a snapshot holding held (the stack's lock, kept), its dumps
	// streamed by stream (nil: none).
	Snapshot(ctx context.Context, req api.SnapshotRequest, stream StreamPlan, held store.Lock) (*store.Manifest, error)
	// LockStack takes the stack's lock for op and returns it with its owner.
	LockStack(ctx context.Context, stack, op string) (store.Lock, string, error)
	// Live returns the workers heard from (heartbeats).
	Live() []store.Worker
	// Agent returns when node's agent started (its heartbeats' Started) and whether
	// it is live: AgentNodes.Agent, which stops a restore's call waiting for an agent
	// that restarted or died.
	Agent(node string) (started time.Time, live bool)
	// AwaitAgents waits (bounded) until every node in nodes has a live agent.
	AwaitAgents(ctx context.Context, nodes map[string]bool)
	// DropSets deletes image sets from their nodes: those dropped, and what was left
	// ("NODE SET: reason").
	DropSets(ctx context.Context, sets []SetRef) ([]SetRef, []string)
	// Event publishes a progress event.
	Event(ctx context.Context, e api.Event)
}

// Config configures Restores.
type Config struct {
	// Name identifies the coordinator (journals, logs).
	Name string
	Host Host
	Bus  bus.Transport
	// Nodes, when set, is how the restores reach the nodes' agents (tests: a fake).
	// Default: AgentNodes over Bus.
	Nodes      Nodes
	Store      store.Store
	Resolver   stack.Resolver
	Algorithms func(name string) (algorithms.Algorithm, error)
	// Restorer, when set, serves restore and migrate (AgentRestorer).
	Restorer Restorer
	// Stopper, when set, stops the stack's running tasks before a restore.
	Stopper Stopper
	// Labels, when set, lists the stacks' service labels: a migration without --copy
	// takes the stack's swarmckpt.migration label (copymode.go).
	Labels LabelReader
	// NewID names a new snapshot of stack.
	NewID func(stack string, now time.Time) string
	// Heal, when set, runs before a restore reads a snapshot's image sets: it replaces
	// a set missing or corrupt on its node by a replica, or has the restore read a
	// replica when the set's node is down (coordinator/replicate.go), and may change
	// m's Images.Node and Copies accordingly.
	Heal func(ctx context.Context, m *store.Manifest) error
	// MoveHeld, when set, serves a swarm-mode migration of only the moving tasks
	// (not WholeStack): swarm stops them (a placement constraint) and the drain hold
	// checkpoints each into a set placed for its replacement (coordinator/moveheld.go).
	// It runs under the stack's lock, after the migration's checks.
	MoveHeld func(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error)
	// Events, when set, is the coordinator's event stream (coordinator/events): what
	// a user must hear of even when no migrate is waiting for it (a post-copy
	// container's lost pages, found by the migration or by the recovery of one a dead
	// coordinator left).
	Events events.Publisher
	// PrepareWait bounds how long a partial migration waits, before it freezes
	// anything, for its targets to be ready for the restore and its sources for a
	// put-back (their network keepers running; prepareEarly), and how long any other
	// restore or migration waits after its pre-flight, before it stops anything, for
	// its targets' keepers (prepare); then it goes ahead and the restore waits for
	// them. 0: DefaultPrepareWait (10 s); negative: not waited for (the keepers start
	// during the dump).
	PrepareWait time.Duration
	Log         *slog.Logger
}

// Restores serves restores and migrations for a coordinator: pre-flight, checkpoint
// of what runs, stop, restore, put back on failure, all journaled (opjournal.go), and
// the recovery of what a dead coordinator left (recoverops.go).
type Restores struct {
	cfg   Config
	nodes Nodes
	log   *slog.Logger
}

// New returns Restores for cfg (Host, Store, Bus, NewID and Log required).
func New(cfg Config) (*Restores, error) {
	if cfg.Host == nil || cfg.Store == nil || cfg.Bus == nil || cfg.NewID == nil || cfg.Log == nil {
		return nil, errors.New("restore: Host, Store, Bus, NewID and Log are required")
	}
	s := &Restores{cfg: cfg, nodes: cfg.Nodes, log: cfg.Log}
	if s.nodes == nil {
		s.nodes = AgentNodes{Bus: cfg.Bus, AddrOf: s.WorkerAddr, Agent: cfg.Host.Agent}
	}
	return s, nil
}

func (s *Restores) restorer() Restorer { return s.cfg.Restorer }

func (s *Restores) event(ctx context.Context, e api.Event) { s.cfg.Host.Event(ctx, e) }

// publish emits e on the coordinator's event stream (Config.Events), if any.
func (s *Restores) publish(ctx context.Context, e events.Event) {
	if s.cfg.Events == nil {
		return
	}
	if err := s.cfg.Events.Publish(context.WithoutCancel(ctx), e); err != nil {
		s.log.Debug("event not published", "event", e.Kind, "err", err)
	}
}

func (s *Restores) live() []store.Worker { return s.cfg.Host.Live() }

func (s *Restores) lockStackAs(ctx context.Context, stackName, op string) (store.Lock, string, error) {
	return s.cfg.Host.LockStack(ctx, stackName, op)
}

// lockStackUntil takes the stack's lock as op and returns, with it and its owner, the
// function that releases it (bounded, past ctx's end).
func (s *Restores) lockStackUntil(ctx context.Context, stackName, op string) (store.Lock, string, func(), error) {
	lock, owner, err := s.lockStackAs(ctx, stackName, op)
	if err != nil {
		return nil, "", nil, err
	}
	return lock, owner, func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
	}, nil
}

func (s *Restores) lockStack(ctx context.Context, stackName, op string) (store.Lock, error) {
	l, _, err := s.cfg.Host.LockStack(ctx, stackName, op)
	return l, err
}

// WorkerAddr returns the transfer endpoint a node's agent announced.
func (s *Restores) WorkerAddr(node string) (string, bool) {
	for _, w := range s.live() {
		if w.Node == node {
			return w.Address, w.Address != ""
		}
	}
	return "", false
}

// StoreErr maps the store's not-found and corrupt errors to the API's codes.
func StoreErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "%v", err)
	case errors.Is(err, store.ErrCorrupt):
		return api.Errorf(api.CodeCorrupt, "%v", err)
	}
	return err
}

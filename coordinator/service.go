package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/members"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/holdtime"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// DefaultAlgorithm is used when a request names none.
const DefaultAlgorithm = restore.DefaultAlgorithm

// Verifier checks the cut of a manifest's stored images.
type Verifier func(ctx context.Context, m *store.Manifest) *store.Verdict

// Config configures a Service.
type Config struct {
	// Name identifies this coordinator (lock owner, logs). Required.
	Name string
	// Bus, Store, Resolver and Algorithms are required.
	Bus        bus.Transport
	Store      store.Store
	Resolver   stack.Resolver
	Algorithms func(name string) (algorithms.Algorithm, error)
	// TickPeriod is one logical tick of the algorithms. Default 100ms.
	TickPeriod time.Duration
	// SnapshotTimeout bounds a snapshot from request to decision when the request
	// gives no timeout and the stack's work is unknown (no earlier snapshot of each of
	// its containers). Default 2m.
	SnapshotTimeout time.Duration
	// Hold turns a snapshot's work (its containers' image sizes in the stack's latest
	// snapshot) into its timeout, and so its containers' hold deadlines (holdbudget.go,
	// docs/operations.md "How long holds last"). Zero fields take holdtime's defaults.
	Hold holdtime.Budget
	// LockTTL is the stack lock's lease: a dead coordinator's lock lapses after it.
	// Default 10s.
	LockTTL time.Duration
	// PlanTimeout bounds each node's answer to the snapshot plan. Default 5s.
	PlanTimeout time.Duration
	// Verify, when set, checks every snapshot's cut before it commits (stored as the
	// manifest's Verdict; an inconsistent cut of an algorithm that promises a
	// consistent one aborts the snapshot) and serves inspect --verify
	// (AgentVerifierWatched in cmd).
	Verify Verifier
	// VerifyCommit, when set, is Verify for the commit of a snapshot just taken (not
	// inspect --verify): AgentCommitVerifier lets each node accept by its file stamps
	// a set it hashed itself as it wrote it, instead of re-reading it. Nil: Verify.
	VerifyCommit Verifier
	// Restorer serves restore and migrate. Default: restore.AgentRestorer over Bus
	// (the nodes' transfer endpoints from their agents' heartbeats, progress as events).
	Restorer Restorer
	// Stopper, when set, stops the stack's running tasks before a restore, so that the
	// restored containers take over their addresses and the swarm runs no duplicates.
	Stopper Stopper
	// WorkerTimeout: a worker silent for this long is dead. Default 3s.
	WorkerTimeout time.Duration
	// RecoverWait bounds how long a starting coordinator waits for the agents of the
	// nodes of a snapshot its predecessor left unfinished to be heard from (their
	// heartbeats) before it aborts it: an abort sent before an agent reconnected (an
	// embedded NATS restarts with its coordinator) would be lost, and its containers
	// held until their deadline. Default 15s.
	RecoverWait time.Duration
	// Policies, when set, makes Run start the policy reconciler (reconcile.go): the
	// stacks' swarmckpt.* labels are read from it and applied (docs/policy.md).
	Policies PolicySource
	// PolicyResync is the reconciler's longest pause between two passes when no
	// service event comes. Default 30s.
	PolicyResync time.Duration
	// XlateResync is how often the leader compares its records of the address
	// translations staying containers keep (xlates.go) with what their workers keep,
	// and deletes those that ended. Default 10s.
	XlateResync time.Duration
	// MigratePrepareWait bounds how long a partial migration waits, before it freezes
	// anything, for the network keepers of its targets and sources to run, and a
	// restore, before it stops the stack, for its targets' (restore.Config.PrepareWait).
	// 0: restore.DefaultPrepareWait (10 s); negative: not waited for.
	MigratePrepareWait time.Duration
	// Elector, when set, makes this coordinator one of several on the same store
	// (leader.go): it serves the CLI, recovers what a dead leader left unfinished and
	// runs the policy reconciler only while it leads; until then it is a standby. Nil:
	// it leads alone from the start (a single coordinator per store).
	Elector store.Elector
	// Host and PID name this process among the coordinators (swarmckpt status).
	// Default the host name and os.Getpid().
	Host string
	PID  int
	// Members, when set, returns the memberlist membership by member name (status
	// shows each node's CRIU version and features from it).
	Members func() map[string]members.Meta
	// Metrics records the snapshots' durations, frozen times, bytes and failures
	// (metrics.NewCoordinator on the caller's registry); nil: none.
	Metrics *metrics.Coordinator
	// Events, when set, also receives every event of the coordinator's event stream
	// (coordinator/events; tests record them with an events.Recorder). The stream is
	// always published on the bus (events.Subject) and written to the log.
	Events events.Publisher
	// Log; default slog.Default().
	Log *slog.Logger
}

func (c *Config) defaults() error {
	if c.WorkerTimeout <= 0 {
		c.WorkerTimeout = 3 * time.Second
	}
	if c.Name == "" || c.Bus == nil || c.Store == nil || c.Resolver == nil || c.Algorithms == nil {
		return errors.New("coordinator: Name, Bus, Store, Resolver and Algorithms are required")
	}
	if c.TickPeriod <= 0 {
		c.TickPeriod = 100 * time.Millisecond
	}
	if c.XlateResync <= 0 {
		c.XlateResync = 10 * time.Second
	}
	if c.SnapshotTimeout <= 0 {
		c.SnapshotTimeout = 2 * time.Minute
	}
	c.Hold = c.Hold.WithDefaults()
	if c.LockTTL <= 0 {
		c.LockTTL = 10 * time.Second
	}
	if c.PlanTimeout <= 0 {
		c.PlanTimeout = 5 * time.Second
	}
	if c.RecoverWait <= 0 {
		c.RecoverWait = 15 * time.Second
	}
	if c.PolicyResync <= 0 {
		c.PolicyResync = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.PID == 0 {
		c.PID = os.Getpid()
	}
	return nil
}

// Service is a running coordinator.
type Service struct {
	cfg Config
	log *slog.Logger

	live *liveness

	// rec is the policy reconciler (nil without Config.Policies).
	rec *reconciler

	// restores serves restore and migrate (coordinator/restore).
	restores *restore.Restores
	// pagesKick makes the pages loop look for pending page digests now (pages.go).
	pagesKick chan struct{}

	// ev is the event stream (events.go): the log, the bus, Config.Events.
	ev events.Publisher

	mu    sync.Mutex
	runs  map[string]*run          // active snapshots by id
	gates map[string]*sync.RWMutex // per stack: user operations vs scheduled runs (gate)

	started time.Time // when New ran (StatusResult.Started)

	leaderMu    sync.Mutex
	leaderSince time.Time // when this coordinator started to lead; zero while standby

	// moves are the tasks a swarm-mode migration is moving through the drain hold
	// (moveheld.go), for the drain controller's decision.
	moves heldMoves
}

// New returns a Service; Run starts serving.
func New(cfg Config) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Log.With("component", "coordinator"), runs: map[string]*run{}, gates: map[string]*sync.RWMutex{}, started: time.Now()}
	s.live = newLiveness(s, cfg.WorkerTimeout)
	s.ev = newEvents(s.cfg, s.log)
	// A migration without --copy takes the stack's swarmckpt.migration label, read
	// where the reconciler reads labels, else from the stopper (stack.Docker).
	var labels restore.LabelReader
	if cfg.Policies != nil {
		labels = cfg.Policies
	} else if lr, ok := cfg.Stopper.(restore.LabelReader); ok {
		labels = lr
	}
	if s.cfg.Restorer == nil {
		s.cfg.Restorer = &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: cfg.Bus, AddrOf: s.WorkerAddr, Agent: s.live.agent}, Events: s.Emit}
	}
	rs, err := restore.New(restore.Config{Name: cfg.Name, Host: host{s}, Bus: cfg.Bus, Store: cfg.Store, Resolver: cfg.Resolver,
		Algorithms: cfg.Algorithms, Restorer: s.cfg.Restorer, Stopper: cfg.Stopper, Labels: labels, NewID: NewID, Log: s.log,
		Heal: s.healFromCopies, MoveHeld: s.moveHeld, Events: s.ev, PrepareWait: cfg.MigratePrepareWait}) // replicate.go, moveheld.go
	if err != nil {
		return nil, err
	}
	s.restores = rs
	s.pagesKick = make(chan struct{}, 1)
	if cfg.Policies != nil {
		s.rec = newReconciler(s)
	}
	return s, nil
}

// Run subscribes to the control plane and serves until ctx ends. With an Elector it
// first waits as a standby until it leads (leader.go); as leader it serves the CLI,
// recovers unfinished snapshots and runs the policy reconciler. Snapshots still
// running when ctx ends stay recorded as they are; the next coordinator recovers
// them. A leader that loses its leadership aborts its running snapshots and returns
// an error matching store.ErrLeadershipLost (its supervisor restarts it as a standby).
func (s *Service) Run(ctx context.Context) error {
	var subs []bus.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	add := func(sub bus.Subscription, err error) error {
		if err != nil {
			return fmt.Errorf("coordinator: subscribe: %w", err)
		}
		subs = append(subs, sub)
		return nil
	}
	if err := add(s.cfg.Bus.Subscribe(node.CoordinatorSubject(), func(m *bus.Msg) {
		env, err := protocol.Decode(m.Data)
		if err != nil {
			s.log.Warn("dropping undecodable message", "err", err)
			return
		}
		if r := s.active(env.Snapshot); r != nil {
			r.deliver(env)
		}
	})); err != nil {
		return err
	}
	if err := add(s.live.subscribe()); err != nil {
		return err
	}
	go s.live.watch(ctx)
	lead, err := s.campaign(ctx)
	if err != nil || lead == nil {
		return err
	}
	return s.lead(ctx, lead)
}

func (s *Service) active(id string) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

// NodeFailed aborts every active snapshot with a container on node (called when
// membership says the node's worker died).
func (s *Service) NodeFailed(node, why string) {
	s.mu.Lock()
	var rs []*run
	for _, r := range s.runs {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		r.nodeFailed(node, why)
	}
}

func (s *Service) event(ctx context.Context, e api.Event) {
	e.At = time.Now().UTC()
	b, _ := json.Marshal(e)
	if err := s.cfg.Bus.Publish(ctx, api.ProgressSubject(e.ID), b); err != nil {
		s.log.Debug("progress event not published", "err", err)
	}
}

// NewID returns a new snapshot id for stack.
func NewID(stack string, now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", stack, now.UTC().Format("20060102-150405"), hex.EncodeToString(b))
}

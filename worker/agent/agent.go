package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Lookup finds an algorithm by name.
type Lookup func(name string) (algorithms.Algorithm, error)

// Config configures an Agent.
type Config struct {
	// Node is this node's name (the swarm node's hostname). Required.
	Node string
	// Bus connects to the control plane. Required.
	Bus bus.Transport
	// Worker is this node's worker, by role (Client.Roles over its local HTTP API).
	// Holder and Dumper are required; the operations of a nil role are answered with
	// node.ErrNoWorker.
	Worker worker.Roles
	// NodeInfo describes the worker: where its image sets live, its transfer address.
	// Zero: Run asks Worker.Inspector for it first.
	NodeInfo worker.NodeInfo
	// Hold caps every lock and freeze: the worker's watchdog releases it at the
	// coordinator's deadline, at the latest this long after it was taken (the
	// coordinator's snapshot timeout plus a margin). Default 2m.
	Hold time.Duration
	// Algorithms finds algorithms by name. Required.
	Algorithms Lookup
	// TickPeriod is the length of one logical tick. Default 100ms (the coordinator's).
	TickPeriod time.Duration
	// ActionTimeout bounds one container action. Default 5m.
	ActionTimeout time.Duration
	// StateDir keeps the container roles' records (mode 0700), so that a restarted
	// agent releases what its predecessor held and refuses the snapshots it was in.
	// Empty keeps nothing.
	StateDir string
	// RecordTTL is the age past which a restarted agent removes a container record
	// unread instead of releasing its container again: every lock and freeze of its
	// snapshot has ended by then (the worker's watchdog releases each at its deadline,
	// at most the worker's --max-hold, 11 min by default, after it was last renewed).
	// A record whose release succeeded is removed at once. Default 15m.
	RecordTTL time.Duration
	// ReleaseRetry is the first wait before the agent repeats a release (thaw, unlock)
	// that failed for a reason other than the container being gone, doubling, at most
	// 30 s, until it succeeds or the container is gone: a container role's release
	// until Hold after the failure (release.go), a restarted agent's release of its
	// predecessor's container until the record is older than RecordTTL. Default 1s.
	ReleaseRetry time.Duration
	// Info describes this worker in heartbeats (Node is filled in; Address defaults
	// to the worker's transfer address when it has a Restorer).
	Info node.Worker
	// HeartbeatPeriod between heartbeats. Default 1s.
	HeartbeatPeriod time.Duration
	// DrainPoll is how often the agent looks for stops the runtime wrapper holds for a
	// drain (drain.go). Default DefaultDrainPoll.
	DrainPoll time.Duration
	// DrainRepublish is how often a stop still held (undecided, or checkpointed and
	// not yet released) is reported again. Default DefaultDrainRepublish.
	DrainRepublish time.Duration
	// Metrics records the agent's operations and holds (nil: none).
	Metrics *metrics.Agent
	// Log; default slog.Default().
	Log *slog.Logger
}

// Agent runs the container roles of one node.
type Agent struct {
	cfg   Config
	info  worker.NodeInfo // the worker's (set before Run serves)
	log   *slog.Logger
	inbox chan func()
	// loop-owned state:
	machines map[string]algorithms.Machine // by algorithm + "/" + container
	plans    map[string]*node.Plan         // by snapshot
	nodeOf   map[string]string             // container -> node (from plans)
	targets  map[string]node.Target
	algoOf   map[string]string // snapshot -> algorithm
	queues   map[string]chan job
	deadline map[string]time.Time // container -> last deadline received

	held   heldSet
	parked parkedSet // park.go
	rel    releases  // failed releases, repeated (release.go)
	recs   records
	drops  tombstones
	// locked: the snapshot that locked all of a container's connections (activity.go).
	locked lockedAll
	// recovering are the records recover rebuilt roles from, by machine key, until
	// their release is queued (drain).
	recovering map[string]stored
	// restartReleased are the containers (ids) recover released at this agent's
	// start: a stop of one names the restart (park.go notParked).
	restartReleased map[string]bool
	// releasing counts, per container, the recovered roles' first releases queued
	// and not done yet: a plan for such a container is refused (acceptPlan).
	releasing map[string]int

	started time.Time // when New ran (Heartbeat.Started)
}

// New checks cfg and returns an Agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Node == "" || cfg.Bus == nil || cfg.Worker.Holder == nil || cfg.Worker.Dumper == nil || cfg.Algorithms == nil {
		return nil, errors.New("agent: Node, Bus, Worker.Holder, Worker.Dumper and Algorithms are required")
	}
	if err := protocol.ValidToken(cfg.Node); err != nil {
		return nil, fmt.Errorf("agent: node name: %w", err)
	}
	if cfg.NodeInfo.Node == "" && cfg.Worker.Inspector == nil {
		return nil, errors.New("agent: NodeInfo or Worker.Inspector is required")
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 2 * time.Minute
	}
	if cfg.TickPeriod <= 0 {
		cfg.TickPeriod = 100 * time.Millisecond
	}
	if cfg.DrainPoll <= 0 {
		cfg.DrainPoll = DefaultDrainPoll
	}
	if cfg.DrainRepublish <= 0 {
		cfg.DrainRepublish = DefaultDrainRepublish
	}
	if cfg.HeartbeatPeriod <= 0 {
		cfg.HeartbeatPeriod = time.Second
	}
	cfg.Info.Node = cfg.Node
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 5 * time.Minute
	}
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = 15 * time.Minute
	}
	if cfg.ReleaseRetry <= 0 {
		cfg.ReleaseRetry = time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Agent{cfg: cfg, info: cfg.NodeInfo, log: log.With("component", "agent", "node", cfg.Node),
		inbox: make(chan func(), 1024), machines: map[string]algorithms.Machine{},
		plans: map[string]*node.Plan{}, nodeOf: map[string]string{}, targets: map[string]node.Target{},
		algoOf: map[string]string{}, queues: map[string]chan job{}, deadline: map[string]time.Time{}, recs: records{dir: cfg.StateDir},
		held: heldSet{metrics: cfg.Metrics}, started: time.Now()}, nil
}

// Run serves until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.info.Node == "" {
		info, err := a.cfg.Worker.Inspector.Info(ctx)
		if err != nil {
			return fmt.Errorf("agent: worker info: %w (is 'swarmckpt worker' running on this node?)", err)
		}
		a.info = info
	}
	if a.cfg.Worker.Restorer != nil && a.cfg.Info.Address == "" {
		a.cfg.Info.Address = a.info.Addr
	}
	// The worker's protocol features are the node's (node.Feature*): heartbeats
	// announce them, and the coordinator asks only for what is announced.
	a.cfg.Info.Features = node.MergeFeatures(a.cfg.Info.Features, a.info.Features)
	if a.info.PreCopy.OK && a.cfg.Worker.PreCopier != nil {
		// Its kernel tracks soft-dirty pages (the worker checked): pre-copy can run here.
		a.cfg.Info.Features = node.MergeFeatures(a.cfg.Info.Features, []string{node.FeaturePreCopy})
	}
	planSub, err := a.cfg.Bus.Subscribe(node.PlanSubject(a.cfg.Node), func(m *bus.Msg) {
		var p node.Plan
		if err := json.Unmarshal(m.Data, &p); err != nil {
			a.respond(m, node.PlanReply{Node: a.cfg.Node, Status: node.StatusOf(node.Mark(fmt.Errorf("decode plan: %w", err), node.ErrInvalidArgument))})
			return
		}
		// Before the plan is accepted (and anything of the stack locked): can this
		// node dump its containers at all (dumpcheck.go)?
		if st := a.checkPlan(ctx, &p); st.Error != "" {
			a.respond(m, node.PlanReply{Node: a.cfg.Node, Status: st})
			return
		}
		done := make(chan string, 1)
		select {
		case a.inbox <- func() { done <- a.acceptPlan(&p) }:
		case <-ctx.Done():
			return
		}
		select {
		case e := <-done:
			a.respond(m, node.PlanReply{Node: a.cfg.Node, Status: refused(e)})
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe plans: %w", err)
	}
	defer planSub.Unsubscribe()
	msgSub, err := a.cfg.Bus.Subscribe(node.NodeSubject(a.cfg.Node), func(m *bus.Msg) {
		env, err := protocol.Decode(m.Data)
		if err != nil {
			a.log.Warn("dropping undecodable message", "err", err)
			return
		}
		select {
		case a.inbox <- func() { a.step(ctx, env) }:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe %s: %w", node.NodeSubject(a.cfg.Node), err)
	}
	defer msgSub.Unsubscribe()
	// Markers from other nodes' containers: only container-to-container types, so
	// that a peer cannot pass a coordinator's command off as its own.
	peerSub, err := a.cfg.Bus.Subscribe(node.PeerSubject(a.cfg.Node), func(m *bus.Msg) {
		env, err := protocol.Decode(m.Data)
		if err != nil {
			a.log.Warn("dropping undecodable message", "err", err)
			return
		}
		if env.From.Kind != protocol.KindContainer || env.Type != protocol.TypeMarker {
			a.log.Warn("dropping a message on the peer subject that is not a container's marker", "type", env.Type, "from", env.From)
			return
		}
		select {
		case a.inbox <- func() { a.step(ctx, env) }:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe %s: %w", node.PeerSubject(a.cfg.Node), err)
	}
	defer peerSub.Unsubscribe()
	rsubs, err := a.serveRestore(ctx)
	if err != nil {
		return fmt.Errorf("agent: subscribe restore: %w", err)
	}
	if ssub, err := a.serveStop(ctx); err == nil {
		rsubs = append(rsubs, ssub)
	} else {
		a.log.Error("cannot serve stops after dumps", "err", err)
	}
	if psub, err := a.servePreflight(ctx); err == nil {
		rsubs = append(rsubs, psub)
	} else {
		a.log.Error("cannot serve restore pre-flight checks", "err", err)
	}
	if hsub, err := a.serveHolds(ctx); err == nil { // holds.go
		rsubs = append(rsubs, hsub)
	} else {
		a.log.Error("cannot serve the list of held containers", "err", err)
	}
	defer func() {
		for _, s := range rsubs {
			_ = s.Unsubscribe()
		}
	}()
	a.recover()
	a.log.Info("node agent ready", "subject", node.NodeSubject(a.cfg.Node))
	tick := time.NewTicker(a.cfg.TickPeriod)
	defer tick.Stop()
	drainDone := make(chan struct{})
	go func() { defer close(drainDone); a.watchDrain(ctx) }() // drain.go
	defer func() { <-drainDone }()
	// Heartbeats run apart from the event loop: a long dump must not look like death.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		hb := time.NewTicker(a.cfg.HeartbeatPeriod)
		defer hb.Stop()
		for {
			a.heartbeat(ctx, false)
			select {
			case <-ctx.Done():
				return
			case <-hb.C:
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			<-hbDone
			a.releaseAll()
			a.heartbeat(context.Background(), true)
			return nil
		case f := <-a.inbox:
			f()
		case <-tick.C:
			for _, m := range a.machines {
				m.Tick()
			}
		}
		a.drain(ctx)
	}
}

// recover rebuilds the container roles of a previous agent from their records: each
// starts by thawing and unlocking its container and refuses the snapshot it was in;
// its record goes once that release succeeded. Records older than RecordTTL are
// removed unread: nothing of theirs can still be held.
func (a *Agent) recover() {
	recs, err := a.recs.all()
	if err != nil {
		a.log.Error("cannot read container records; containers held by a previous agent are released by the worker's watchdog only", "err", err)
		return
	}
	stale := 0
	for _, r := range recs {
		if !r.written.IsZero() && time.Since(r.written) > a.cfg.RecordTTL {
			if err := a.recs.remove(r.algo, r.container, r.rec); err != nil {
				a.log.Warn("cannot remove a stale container record", "container", r.container, "err", err)
			} else {
				stale++
			}
			continue
		}
		alg, err := a.cfg.Algorithms(r.algo)
		if err != nil {
			a.log.Warn("record of an unknown algorithm", "algorithm", r.algo, "container", r.container)
			continue
		}
		a.log.Info("recovering container role of a previous agent: releasing the container", "container", r.container, "algorithm", r.algo)
		k := key(r.algo, r.container)
		a.machines[k] = alg.NewContainer(algorithms.ContainerConfig{ID: r.container, Recovering: true, Record: r.rec})
		if a.recovering == nil {
			a.recovering = map[string]stored{}
		}
		a.recovering[k] = r
		if a.restartReleased == nil {
			a.restartReleased = map[string]bool{}
		}
		a.restartReleased[r.container] = true
		if _, ok := a.targets[r.container]; !ok {
			a.targets[r.container] = node.Target{ID: r.container, Node: a.cfg.Node}
		}
	}
	if stale > 0 {
		a.log.Info("removed container records older than the record TTL unread (their holds ended long ago)", "count", stale, "ttl", a.cfg.RecordTTL)
	}
}

func (a *Agent) heartbeat(ctx context.Context, leaving bool) {
	b, _ := json.Marshal(node.Heartbeat{Worker: a.cfg.Info, Leaving: leaving, Started: a.started})
	if err := a.cfg.Bus.Publish(ctx, node.HeartbeatSubject, b); err != nil {
		a.log.Debug("heartbeat not sent", "err", err)
	}
}

func (a *Agent) respond(m *bus.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

// refused is the status of a plan refused for why ("": accepted): this node cannot
// take part (it cannot dump a container, or lacks the algorithm).
func refused(why string) node.Status {
	if why == "" {
		return node.Status{}
	}
	return node.Status{Error: why, Code: node.CodeFailedPrecondition}
}

func key(algo, container string) string { return algo + "/" + container }

func (a *Agent) acceptPlan(p *node.Plan) string {
	alg, err := a.cfg.Algorithms(p.Algorithm)
	if err != nil {
		return fmt.Sprintf("algorithm %q: %v", p.Algorithm, err)
	}
	if why := a.stillReleasing(p); why != "" {
		return why
	}
	a.plans[p.Snapshot] = p
	a.algoOf[p.Snapshot] = p.Algorithm
	for _, c := range p.Containers {
		a.nodeOf[c.ID] = c.Node
		a.targets[c.ID] = c
		if c.Node != a.cfg.Node {
			continue
		}
		k := key(p.Algorithm, c.ID)
		if _, ok := a.machines[k]; !ok {
			a.machines[k] = alg.NewContainer(algorithms.ContainerConfig{ID: c.ID})
		}
	}
	return ""
}

// stillReleasing refuses a plan (its reason; "": none) one of whose containers here
// a role recovered from a previous agent's record has not released yet. That release
// (thaw, unlock all) runs on the queue of the record's algorithm, beside the plan's
// own lock, freeze and dump when the plan's algorithm is another: run after them, it
// lifted the new snapshot's lock and let messages cross its cut (fault seed 9257: an
// agent restarted just as a migration's snapshot began; the bank lost messages).
func (a *Agent) stillReleasing(p *node.Plan) string {
	for _, c := range p.Containers {
		if c.Node != a.cfg.Node {
			continue
		}
		pending := a.releasing[c.ID] > 0
		for k := range a.recovering {
			if _, id, _ := strings.Cut(k, "/"); id == c.ID {
				pending = true
			}
		}
		if pending {
			return fmt.Sprintf("container %s is still being released by node %s's agent, which restarted (its predecessor held it for an earlier snapshot): take the snapshot again in a moment", c.ID, a.cfg.Node)
		}
	}
	return ""
}

// step feeds a protocol message to the machine of its destination container.
func (a *Agent) step(ctx context.Context, env protocol.Envelope) {
	if env.To.Kind != protocol.KindContainer {
		a.log.Debug("ignoring message not addressed to a container", "type", env.Type, "to", env.To)
		return
	}
	algo, ok := a.algoOf[env.Snapshot]
	if !ok {
		a.log.Warn("message for an unknown snapshot (no plan)", "snapshot", env.Snapshot, "type", env.Type)
		return
	}
	m, ok := a.machines[key(algo, env.To.ID)]
	if !ok {
		a.log.Warn("message for a container not on this node", "container", env.To.ID, "type", env.Type)
		return
	}
	if env.Deadline.UnixMilli > 0 {
		a.deadline[env.To.ID] = time.UnixMilli(env.Deadline.UnixMilli)
	}
	if env.Type == protocol.TypeAbort && a.parks(env.Snapshot) {
		// Queued before the role's own release: a container parked after its dump
		// runs on (park.go).
		id, snap := env.To.ID, env.Snapshot
		errc := a.onContainer(ctx, snap, id, func(ctx context.Context) error { return a.unpark(ctx, snap, id) })
		go func() {
			if err := <-errc; err != nil {
				a.log.Warn("cannot release a container held since its dump (its hold's deadline releases it)", "container", id, "snapshot", snap, "err", err)
			}
		}()
	}
	if err := m.Step(env); err != nil {
		a.log.Warn("container role refused message", "container", env.To.ID, "type", env.Type, "err", err)
	}
}

// drain hands every pending Ready to the queues of its containers. Each container's
// actions run in order on that container's own goroutine (a stalled dump of one
// container never delays the release of another), followed by the Ready's messages;
// each action's outcome is stepped back into the machine from the event loop.
func (a *Agent) drain(ctx context.Context) {
	for again := true; again; {
		again = false
		for k, m := range a.machines {
			if !m.HasReady() {
				continue
			}
			again = true
			rd := m.Ready()
			j := job{m: m}
			if r, ok := a.recovering[k]; ok {
				// The recovered role's first Ready is the release of its container.
				j.recovered = &r
				delete(a.recovering, k)
				if a.releasing == nil {
					a.releasing = map[string]int{}
				}
				a.releasing[r.container]++
			}
			algo, _, _ := strings.Cut(k, "/")
			for _, env := range rd.Messages {
				if o, ok := a.route(env); ok {
					j.msgs = append(j.msgs, o)
				}
			}
			for _, act := range rd.Actions {
				p := a.prepare(act)
				p.algo = algo
				j.acts = append(j.acts, p)
			}
			a.queue(ctx, k) <- j
			m.Advance()
		}
	}
}

type prepared struct {
	algo  string
	act   algorithms.Action
	t     node.Target
	peers []node.Target
	leave bool
	park  bool // a dump that parks its container (park.go)
}

type job struct {
	fn   func(ctx context.Context) // alone: run it (park.go)
	m    algorithms.Machine
	acts []prepared
	msgs []outMsg
	// recovered: the record this (recovered) role was rebuilt from, removed once every
	// container action of the job succeeded.
	recovered *stored
}

type outMsg struct {
	subject string
	data    []byte
}

// prepare resolves what an action needs from loop-owned state.
func (a *Agent) prepare(act algorithms.Action) prepared {
	t, ok := a.targets[act.Container]
	if !ok {
		t = node.Target{ID: act.Container, Node: a.cfg.Node}
	}
	leave, park := act.LeaveRunning, false
	if p := a.plans[act.Snapshot]; p != nil && p.Exit {
		// Stopped after the snapshot committed, not by its dump (park.go), when the
		// executor can: an abort then leaves the container running.
		leave, park = a.parks(act.Snapshot), a.parks(act.Snapshot)
	}
	if act.Kind == algorithms.ActLock || act.Kind == algorithms.ActFreeze || (park && act.Kind == algorithms.ActDump) {
		t.Deadline = a.deadline[act.Container]
	}
	return prepared{act: act, t: t, peers: a.peersOf(act.Peers), leave: leave, park: park && act.Kind == algorithms.ActDump}
}

func (a *Agent) queue(ctx context.Context, k string) chan job {
	if q, ok := a.queues[k]; ok {
		return q
	}
	q := make(chan job, 256)
	a.queues[k] = q
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case j := <-q:
				if j.fn != nil {
					j.fn(ctx)
					continue
				}
				released := true
				for _, p := range j.acts {
					if p.act.Kind == algorithms.ActPersist {
						if err := a.recs.save(p.algo, p.act.Container, p.act.Record); err != nil {
							a.log.Error("cannot persist container record", "container", p.act.Container, "err", err)
						}
						continue
					}
					res := a.execute(ctx, p)
					if r, ok := res.Body.(*protocol.ActionResult); !ok || r.Error != "" {
						released = false
						if j.recovered == nil && isRelease(p.act.Kind) {
							a.releaseFailed(ctx, q, p) // repeated until it succeeds (release.go)
						}
					}
					m := j.m
					select {
					case a.inbox <- func() {
						if err := m.Step(res); err != nil {
							a.log.Warn("container role refused action result", "container", p.t.ID, "err", err)
						}
					}:
					case <-ctx.Done():
						return
					}
				}
				if r := j.recovered; r != nil && released {
					// Released: a later restart has nothing of it to release again.
					if err := a.recs.remove(r.algo, r.container, r.rec); err != nil {
						a.log.Warn("cannot remove the record of a released container", "container", r.container, "err", err)
					}
				} else if r != nil {
					a.retryRelease(ctx, q, *r, j.acts, a.cfg.ReleaseRetry)
				}
				if r := j.recovered; r != nil {
					select {
					case a.inbox <- func() {
						if a.releasing[r.container]--; a.releasing[r.container] <= 0 {
							delete(a.releasing, r.container)
						}
					}:
					case <-ctx.Done():
						return
					}
				}
				for _, o := range j.msgs {
					if err := a.cfg.Bus.Publish(ctx, o.subject, o.data); err != nil {
						a.log.Warn("cannot send message", "subject", o.subject, "err", err)
					}
				}
			}
		}
	}()
	return q
}

// maxReleaseRetry caps the wait between two attempts of retryRelease.
const maxReleaseRetry = 30 * time.Second

// retryRelease repeats, on the container's own queue q after wait, the release (thaw,
// unlock) of a container a previous agent held (record r) whose first attempt failed
// for a reason other than the container being gone. Fault seed 109 (issue 21): an agent
// restarted while a put-back was stopping its containers; its releases at start failed
// on containers about to be removed, and their records stayed until its next restart.
// It stops once the release succeeded or found the container gone (the record goes),
// once the record is no longer r (a newer role of this container wrote or removed it),
// or once r is older than RecordTTL (every hold of its snapshot has ended: removed). A
// container this agent holds again (a newer snapshot) is left to that snapshot.
func (a *Agent) retryRelease(ctx context.Context, q chan job, r stored, acts []prepared, wait time.Duration) {
	a.log.Info("release of a container held by a previous agent failed: retrying", "container", r.container, "in", wait)
	time.AfterFunc(wait, func() {
		retry := job{fn: func(ctx context.Context) {
			if !a.recs.is(r.algo, r.container, r.rec) {
				return
			}
			if !r.written.IsZero() && time.Since(r.written) > a.cfg.RecordTTL {
				if err := a.recs.remove(r.algo, r.container, r.rec); err != nil {
					a.log.Warn("cannot remove a stale container record", "container", r.container, "err", err)
				}
				return
			}
			_, locked := a.held.since("lock", r.container)
			_, frozen := a.held.since("freeze", r.container)
			released := !locked && !frozen
			for _, p := range acts {
				if !released || !p.act.Kind.IsContainerAction() {
					continue
				}
				res := a.execute(ctx, p)
				if d, ok := res.Body.(*protocol.ActionResult); !ok || d.Error != "" {
					released = false
				}
			}
			if released {
				if err := a.recs.remove(r.algo, r.container, r.rec); err != nil {
					a.log.Warn("cannot remove the record of a released container", "container", r.container, "err", err)
				}
				a.log.Info("released a container held by a previous agent on a later attempt", "container", r.container)
				return
			}
			a.retryRelease(ctx, q, r, acts, min(2*wait, maxReleaseRetry))
		}}
		select {
		case q <- retry:
		case <-ctx.Done():
		}
	})
}

func (a *Agent) peersOf(ids []string) []node.Target {
	if ids == nil {
		return nil
	}
	out := make([]node.Target, 0, len(ids))
	for _, id := range ids {
		if t, ok := a.targets[id]; ok {
			out = append(out, t)
		} else {
			out = append(out, node.Target{ID: id})
		}
	}
	return out
}

// execute runs one container action and returns its Done message.
// goneReleased turns a release's node.ErrNotFound (the container no longer exists on
// this node: its lock and freeze went with it) into success: nothing of it is held. A
// restarted agent's recovered roles of removed containers (moved, restored again)
// then count as released and their records go, instead of staying until RecordTTL and
// being released again, in vain, at every restart.
func (a *Agent) goneReleased(err error, what string, t node.Target) error {
	if err != nil && errors.Is(err, node.ErrNotFound) {
		a.log.Info("container gone: nothing of it to release", "what", what, "container", t.ID, "err", err)
		return nil
	}
	return err
}

func (a *Agent) execute(ctx context.Context, p prepared) protocol.Envelope {
	act, t := p.act, p.t
	if !act.Kind.IsContainerAction() {
		a.log.Warn("container role asked for a non-container action", "kind", act.Kind)
		return algorithms.Done(act, fmt.Errorf("not a container action: %s", act.Kind), nil, nil)
	}
	actx, cancel := context.WithTimeout(ctx, a.cfg.ActionTimeout)
	defer cancel()
	start := time.Now()
	var (
		err   error
		conns []protocol.ConnCounter
		stats *protocol.DumpStats
	)
	switch act.Kind {
	case algorithms.ActLock:
		err = a.holding(actx, t.ID, func() error { return a.lock(actx, t, p.peers) })
		if err == nil {
			a.held.set("lock", t, true)
			a.held.started("lock", t.ID, act.Snapshot)
			if p.peers == nil { // every connection locked: what it did so far (activity.go)
				conns = a.lockActivity(actx, act.Snapshot, t)
			}
		}
	case algorithms.ActUnlock:
		if a.parked.has(act.Snapshot, t.ID) {
			break // held until the snapshot's outcome (park.go)
		}
		err = a.unlock(actx, t, p.peers)
		err = a.goneReleased(err, "lock", t)
		if err == nil {
			a.logReleased("lock", t, act.Snapshot, len(p.peers))
		}
		if err == nil && p.peers == nil {
			a.held.set("lock", t, false)
		}
	case algorithms.ActFreeze:
		err = a.holding(actx, t.ID, func() error { return a.freeze(actx, t) })
		if err == nil {
			a.held.set("freeze", t, true)
			a.held.started("freeze", t.ID, act.Snapshot)
		}
	case algorithms.ActThaw:
		if a.parked.has(act.Snapshot, t.ID) {
			break // held until the snapshot's outcome (park.go)
		}
		err = a.thaw(actx, t)
		err = a.goneReleased(err, "freeze", t)
		if err == nil {
			a.logReleased("freeze", t, act.Snapshot, 0)
			a.held.set("freeze", t, false)
		}
	case algorithms.ActDump:
		var st protocol.DumpStats
		set := node.SetID(act.Snapshot, t.SetKey())
		if a.drops.has(set) {
			// Aborted and collected before this dump began: a dump now would write (and
			// stream to its target) a set nobody drops again.
			err = fmt.Errorf("snapshot %s was aborted and its image sets dropped before the dump of %s began: not dumped", act.Snapshot, t.SetKey())
			break
		}
		if p.park {
			// Frozen from before the dump to the snapshot's outcome: the dump leaves it
			// frozen, and nothing it does after the dump can be lost.
			if _, frozen := a.held.since("freeze", t.ID); !frozen {
				if err = a.holding(actx, t.ID, func() error { return a.freeze(actx, t) }); err != nil {
					break
				}
				a.held.set("freeze", t, true)
			}
		}
		st, err = a.dump(actx, act.Snapshot, t, p.leave, act.ReuseFrom)
		if err == nil && p.park {
			a.parked.add(act.Snapshot, t)
		}
		if a.drops.has(set) && a.cfg.Worker.Sets != nil {
			// The snapshot was aborted (its sets dropped) while this dump ran.
			if derr := a.cfg.Worker.Sets.DropSet(context.WithoutCancel(ctx), set); derr != nil {
				a.log.Warn("cannot drop the image set of an aborted snapshot", "set", set, "err", derr)
			}
		}
		if err == nil {
			// The durable image set travels with the container role's dump-done: the
			// coordinator records it from that one message.
			st.DumpMS = time.Since(start).Milliseconds()
			if fz, ok := a.held.since("freeze", t.ID); ok {
				st.FreezeMS = time.Since(fz).Milliseconds()
			}
			if st.ReusedFrom == "" { // fresh (also a reuse whose images were gone)
				st.Conns = a.dumpActivity(actx, act.Snapshot, t)
			}
			stats = &st
			conns = st.Conns
		}
	}
	a.cfg.Metrics.Op(act.Kind.String(), time.Since(start), opResult(err))
	if err != nil {
		a.log.Warn("container action failed", "action", act.Kind, "container", t.ID, "snapshot", act.Snapshot, "err", err)
	} else {
		a.log.Debug("container action done", "action", act.Kind, "container", t.ID, "ms", time.Since(start).Milliseconds())
	}
	return algorithms.Done(act, err, conns, stats)
}

// logReleased logs, at info level, how long container t had been frozen or network
// locked (what) when a snapshot's thaw or unlock released it (peers > 0: an unlock of
// that many peers' connections only; the time counts from the first lock). The
// algorithm benchmark (benchmarks/algorithms) reads these lines: the manifest's
// freeze_ms ends with the dump, a blocking snapshot's freeze ends at its commit.
func (a *Agent) logReleased(what string, t node.Target, snapshot string, peers int) {
	since, ok := a.held.sinceFor(what, t.ID, snapshot)
	if !ok {
		return
	}
	a.log.Info("container released", "what", what, "container", t.ID, "snapshot", snapshot,
		"held_ms", time.Since(since).Milliseconds(), "peers", peers)
}

// route encodes a message and finds its subject (loop-owned state).
func (a *Agent) route(env protocol.Envelope) (outMsg, bool) {
	subj, err := node.SubjectFor(env.To, func(c string) (string, bool) { n, ok := a.nodeOf[c]; return n, ok })
	if err != nil {
		a.log.Warn("cannot route message", "to", env.To, "err", err)
		return outMsg{}, false
	}
	if env.From.Kind == protocol.KindContainer && env.To.Kind == protocol.KindContainer {
		// Container to container (markers): the peer subject, the only one of another
		// node an agent may publish on (controlplane/natsauth).
		subj = node.PeerSubject(a.nodeOf[env.To.ID])
	}
	b, err := protocol.Encode(env)
	if err != nil {
		a.log.Warn("cannot encode message", "type", env.Type, "err", err)
		return outMsg{}, false
	}
	return outMsg{subject: subj, data: b}, true
}

// releaseAll thaws and unlocks every container this agent still holds, on shutdown.
func (a *Agent) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range a.held.all() {
		var err error
		if h.what == "freeze" {
			err = a.thaw(ctx, h.t)
		} else {
			err = a.unlock(ctx, h.t, nil)
		}
		if err != nil {
			a.log.Warn("release on shutdown failed", "what", h.what, "container", h.t.ID, "err", err)
		}
	}
	a.releasePending(ctx) // release.go
}

// heldSet records which containers this agent has locked or frozen (shared between
// the container goroutines and shutdown).
type heldSet struct {
	mu sync.Mutex
	m  map[string]heldEntry
	// metrics counts the holds taken and how long each lasted (nil: none).
	metrics *metrics.Agent
}

// opResult is an operation's result label: ok, or its error's class.
func opResult(err error) string {
	if err == nil {
		return "ok"
	}
	return string(node.CodeOf(err))
}

type heldEntry struct {
	what  string
	t     node.Target
	since time.Time
	// snapshot that took the hold, and when (started): a per-peer unlock leaves the
	// entry in place, so a later snapshot's lock finds it already there.
	snapshot string
	at       time.Time
}

func (h *heldSet) set(what string, t node.Target, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]heldEntry{}
	}
	k := what + "/" + t.ID
	if on {
		if _, ok := h.m[k]; !ok {
			h.m[k] = heldEntry{what: what, t: t, since: time.Now()}
			h.metrics.Held(what)
		}
	} else if e, ok := h.m[k]; ok {
		delete(h.m, k)
		h.metrics.Released(what, time.Since(e.since))
	}
}

// started records that snapshot took the hold what on container id now (the entry
// set has made), unless that snapshot had taken it already.
func (h *heldSet) started(what, id, snapshot string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := what + "/" + id
	if e, ok := h.m[k]; ok && e.snapshot != snapshot {
		e.snapshot, e.at = snapshot, time.Now()
		h.m[k] = e
	}
}

// sinceFor is when snapshot took the hold what on container id (false: it holds none).
func (h *heldSet) sinceFor(what, id, snapshot string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[what+"/"+id]
	if !ok || e.snapshot != snapshot {
		return time.Time{}, false
	}
	return e.at, true
}

func (h *heldSet) since(what, id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[what+"/"+id]
	return e.since, ok
}

func (h *heldSet) all() []heldEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]heldEntry, 0, len(h.m))
	for _, e := range h.m {
		out = append(out, e)
	}
	return out
}

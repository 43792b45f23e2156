package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// PlanSubject is where a node's agent receives snapshot plans (request/reply).
func PlanSubject(node string) string { return "swarmckpt.v1.agent." + node + ".plan" }

// ImagesSubject is where agents report durable image sets of a snapshot.
func ImagesSubject(snapshot string) string { return "swarmckpt.v1.images." + snapshot }

// Target is one container of a snapshot.
type Target struct {
	ID      string   `json:"id"`
	Service string   `json:"service,omitempty"`
	Slot    int      `json:"slot,omitempty"`
	Node    string   `json:"node"`
	IPs     []string `json:"ips,omitempty"`
}

// Plan tells a node which containers a snapshot covers.
type Plan struct {
	Snapshot   string   `json:"snapshot"`
	Stack      string   `json:"stack"`
	Algorithm  string   `json:"algorithm"`
	Epoch      uint64   `json:"epoch"`
	Containers []Target `json:"containers"`
}

// PlanReply answers a Plan.
type PlanReply struct {
	Node  string `json:"node"`
	Error string `json:"error,omitempty"`
}

// ImageReport is published after a container's dump is durable.
type ImageReport struct {
	Snapshot  string             `json:"snapshot"`
	Container string             `json:"container"`
	Images    store.ImageSet     `json:"images"`
	Stats     protocol.DumpStats `json:"stats"`
	FreezeMS  int64              `json:"freeze_ms,omitempty"`
	DumpMS    int64              `json:"dump_ms,omitempty"`
}

// DumpResult is what an Executor returns for a dump.
type DumpResult struct {
	Stats  protocol.DumpStats
	Images store.ImageSet
}

// Executor performs container actions on this node (the worker's data plane).
type Executor interface {
	Lock(ctx context.Context, c Target, peers []Target) ([]protocol.ConnCounter, error)
	Unlock(ctx context.Context, c Target, peers []Target) error
	Freeze(ctx context.Context, c Target) error
	Thaw(ctx context.Context, c Target) error
	Dump(ctx context.Context, snapshot string, c Target, leaveRunning bool, reuseFrom string) (*DumpResult, error)
}

// Lookup finds an algorithm by name.
type Lookup func(name string) (algorithms.Algorithm, error)

// Config configures an Agent.
type Config struct {
	// Node is this node's name (the swarm node's hostname). Required.
	Node string
	// Bus connects to the control plane. Required.
	Bus bus.Transport
	// Exec executes container actions. Required.
	Exec Executor
	// Algorithms finds algorithms by name. Required.
	Algorithms Lookup
	// TickPeriod is the length of one logical tick. Default 100ms (the coordinator's).
	TickPeriod time.Duration
	// ActionTimeout bounds one container action. Default 5m.
	ActionTimeout time.Duration
	// Log; default slog.Default().
	Log *slog.Logger
}

// Agent runs the container roles of one node.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	inbox chan func()
	// loop-owned state:
	machines map[string]algorithms.Machine // by algorithm + "/" + container
	plans    map[string]*Plan              // by snapshot
	nodeOf   map[string]string             // container -> node (from plans)
	targets  map[string]Target
	algoOf   map[string]string // snapshot -> algorithm
	freezeAt map[string]time.Time

	mu sync.Mutex // guards nothing shared with the loop but subscriptions
}

// New checks cfg and returns an Agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Node == "" || cfg.Bus == nil || cfg.Exec == nil || cfg.Algorithms == nil {
		return nil, errors.New("nodeagent: Node, Bus, Exec and Algorithms are required")
	}
	if err := protocol.ValidToken(cfg.Node); err != nil {
		return nil, fmt.Errorf("nodeagent: node name: %w", err)
	}
	if cfg.TickPeriod <= 0 {
		cfg.TickPeriod = 100 * time.Millisecond
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 5 * time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Agent{cfg: cfg, log: log.With("component", "nodeagent", "node", cfg.Node),
		inbox: make(chan func(), 1024), machines: map[string]algorithms.Machine{},
		plans: map[string]*Plan{}, nodeOf: map[string]string{}, targets: map[string]Target{},
		algoOf: map[string]string{}, freezeAt: map[string]time.Time{}}, nil
}

// Run serves until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	planSub, err := a.cfg.Bus.Subscribe(PlanSubject(a.cfg.Node), func(m *bus.Msg) {
		var p Plan
		if err := json.Unmarshal(m.Data, &p); err != nil {
			a.respond(m, PlanReply{Node: a.cfg.Node, Error: "decode plan: " + err.Error()})
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
			a.respond(m, PlanReply{Node: a.cfg.Node, Error: e})
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("nodeagent: subscribe plans: %w", err)
	}
	defer planSub.Unsubscribe()
	msgSub, err := a.cfg.Bus.Subscribe(protocol.NodeSubject(a.cfg.Node), func(m *bus.Msg) {
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
		return fmt.Errorf("nodeagent: subscribe %s: %w", protocol.NodeSubject(a.cfg.Node), err)
	}
	defer msgSub.Unsubscribe()
	a.log.Info("node agent ready", "subject", protocol.NodeSubject(a.cfg.Node))
	tick := time.NewTicker(a.cfg.TickPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.releaseAll()
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

func (a *Agent) respond(m *bus.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

func key(algo, container string) string { return algo + "/" + container }

func (a *Agent) acceptPlan(p *Plan) string {
	alg, err := a.cfg.Algorithms(p.Algorithm)
	if err != nil {
		return fmt.Sprintf("algorithm %q: %v", p.Algorithm, err)
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
	if err := m.Step(env); err != nil {
		a.log.Warn("container role refused message", "container", env.To.ID, "type", env.Type, "err", err)
	}
}

// drain executes every pending Ready.
func (a *Agent) drain(ctx context.Context) {
	for again := true; again; {
		again = false
		for k, m := range a.machines {
			if !m.HasReady() {
				continue
			}
			again = true
			rd := m.Ready()
			for _, act := range rd.Actions {
				a.execute(ctx, m, act)
			}
			for _, env := range rd.Messages {
				a.send(ctx, env)
			}
			m.Advance()
			_ = k
		}
	}
}

func (a *Agent) peersOf(ids []string) []Target {
	if ids == nil {
		return nil
	}
	out := make([]Target, 0, len(ids))
	for _, id := range ids {
		if t, ok := a.targets[id]; ok {
			out = append(out, t)
		} else {
			out = append(out, Target{ID: id})
		}
	}
	return out
}

func (a *Agent) execute(ctx context.Context, m algorithms.Machine, act algorithms.Action) {
	if !act.Kind.IsContainerAction() {
		a.log.Warn("container role asked for a non-container action", "kind", act.Kind)
		return
	}
	t, ok := a.targets[act.Container]
	if !ok {
		t = Target{ID: act.Container, Node: a.cfg.Node}
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
		conns, err = a.cfg.Exec.Lock(actx, t, a.peersOf(act.Peers))
	case algorithms.ActUnlock:
		err = a.cfg.Exec.Unlock(actx, t, a.peersOf(act.Peers))
	case algorithms.ActFreeze:
		err = a.cfg.Exec.Freeze(actx, t)
		if err == nil {
			a.freezeAt[t.ID] = start
		}
	case algorithms.ActThaw:
		err = a.cfg.Exec.Thaw(actx, t)
		delete(a.freezeAt, t.ID)
	case algorithms.ActDump:
		var res *DumpResult
		res, err = a.cfg.Exec.Dump(actx, act.Snapshot, t, act.LeaveRunning, act.ReuseFrom)
		if err == nil {
			stats = &res.Stats
			conns = res.Stats.Conns
			rep := ImageReport{Snapshot: act.Snapshot, Container: t.ID, Images: res.Images, Stats: res.Stats,
				DumpMS: time.Since(start).Milliseconds()}
			if fz, ok := a.freezeAt[t.ID]; ok {
				rep.FreezeMS = time.Since(fz).Milliseconds()
			}
			b, _ := json.Marshal(rep)
			if perr := a.cfg.Bus.Publish(ctx, ImagesSubject(act.Snapshot), b); perr != nil {
				a.log.Warn("cannot report image set", "container", t.ID, "err", perr)
			}
		}
	}
	if err != nil {
		a.log.Warn("container action failed", "action", act.Kind, "container", t.ID, "snapshot", act.Snapshot, "err", err)
	} else {
		a.log.Debug("container action done", "action", act.Kind, "container", t.ID, "ms", time.Since(start).Milliseconds())
	}
	if serr := m.Step(algorithms.Done(act, err, conns, stats)); serr != nil {
		a.log.Warn("container role refused action result", "container", t.ID, "err", serr)
	}
}

func (a *Agent) send(ctx context.Context, env protocol.Envelope) {
	subj, err := protocol.SubjectFor(env.To, func(c string) (string, bool) { n, ok := a.nodeOf[c]; return n, ok })
	if err != nil {
		a.log.Warn("cannot route message", "to", env.To, "err", err)
		return
	}
	b, err := protocol.Encode(env)
	if err != nil {
		a.log.Warn("cannot encode message", "type", env.Type, "err", err)
		return
	}
	if err := a.cfg.Bus.Publish(ctx, subj, b); err != nil {
		a.log.Warn("cannot send message", "subject", subj, "type", env.Type, "err", err)
	}
}

// releaseAll thaws and unlocks every container this agent knows of, on shutdown.
func (a *Agent) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id := range a.freezeAt {
		t := a.targets[id]
		if err := a.cfg.Exec.Thaw(ctx, t); err != nil {
			a.log.Warn("thaw on shutdown failed", "container", id, "err", err)
		}
		if err := a.cfg.Exec.Unlock(ctx, t, nil); err != nil {
			a.log.Warn("unlock on shutdown failed", "container", id, "err", err)
		}
	}
}

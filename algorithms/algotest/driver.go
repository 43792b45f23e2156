package algotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Faults are the probabilities (per mille) of faults the driver injects on its own.
type Faults struct {
	// Drop and Dup apply to every message between processes (never to action results).
	Drop, Dup int
	// CoordinatorCrash is the chance, per coordinator Ready, that the coordinator crashes
	// after executing the Ready's actions but before sending its messages, and restarts
	// from its last record.
	CoordinatorCrash int
	// WorkerCrash is the chance, per delivered message, that the receiving container's
	// worker restarts (its container role is rebuilt with Recovering set).
	WorkerCrash int
}

// Options configure a Driver.
type Options struct {
	// Containers is the participant set (validated like a snapshot request).
	Containers []protocol.Container
	// Config is the coordinator config; tests use small timeouts.
	Config algorithms.Config
	// Seed drives delivery order, traffic and faults.
	Seed uint64
	// Faults are injected at random (seeded).
	Faults Faults
}

type chanKey struct{ from, to string }

type channel struct {
	sent, delivered uint64
}

type container struct {
	id, node string
	peers    []string
	frozen   bool
	lockAll  bool
	lockPeer map[string]bool
	muted    bool
}

func (c *container) locks(peer string) bool { return c.lockAll || c.lockPeer[peer] }
func (c *container) held() bool             { return c.frozen || c.lockAll || len(c.lockPeer) > 0 }

type inflight struct {
	m     protocol.Envelope
	local bool // an action result: never dropped or duplicated
}

// Outcome is a decision the coordinator made.
type Outcome struct {
	Epoch     uint64
	Snapshot  string
	Committed bool
	Reason    string
}

// Recording is one container's recorded counters in one snapshot.
type Recording struct {
	Conns      []protocol.ConnCounter
	ReusedFrom string
}

// Driver runs an algorithm in memory. It is deterministic for given Options.
type Driver struct {
	alg   algorithms.Algorithm
	opts  Options
	rng   *rand.Rand
	coord algorithms.Machine
	rec   []byte            // last record the coordinator persisted
	crec  map[string][]byte // last record each container role persisted

	order []string // container ids in request order
	cs    map[string]*container
	parts map[string]algorithms.Machine
	chans map[chanKey]*channel

	net []inflight

	// failCommit, when set, makes the next ActCommit fail with this reason.
	failCommit string
	// holdCommits keeps the outcomes of ActCommit in held until ReleaseCommits.
	holdCommits bool
	held        []protocol.Envelope

	// Outcomes lists every decision in order.
	Outcomes []Outcome
	// Accepted lists the snapshots the coordinator accepted (persisted as active).
	Accepted map[string]uint64
	// Recordings holds, per snapshot id, each container's recording.
	Recordings map[string]map[string]Recording
	// Messages counts messages sent between processes.
	Messages int
	// Errors collects contract violations the driver observed.
	Errors []string

	log *strings.Builder

	socks sockets // ReportSockets (sockets.go)
}

// NewDriver builds a driver with a fresh coordinator and one container role per container.
func NewDriver(alg algorithms.Algorithm, o Options) (*Driver, error) {
	d := &Driver{
		alg: alg, opts: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		cs: map[string]*container{}, crec: map[string][]byte{}, parts: map[string]algorithms.Machine{}, chans: map[chanKey]*channel{},
		Accepted: map[string]uint64{}, Recordings: map[string]map[string]Recording{},
	}
	for _, c := range o.Containers {
		if _, dup := d.cs[c.ID]; dup {
			return nil, fmt.Errorf("algotest: container %q twice", c.ID)
		}
		d.order = append(d.order, c.ID)
		d.cs[c.ID] = &container{id: c.ID, node: c.Node, peers: c.Peers, lockPeer: map[string]bool{}}
		d.parts[c.ID] = alg.NewContainer(algorithms.ContainerConfig{ID: c.ID})
		for _, p := range c.Peers {
			d.chans[chanKey{c.ID, p}] = &channel{}
		}
	}
	d.coord = alg.NewCoordinator(o.Config)
	return d, nil
}

// SetLog makes the driver write a transcript of everything it executes.
func (d *Driver) SetLog(b *strings.Builder) { d.log = b }

func (d *Driver) logf(format string, args ...any) {
	if d.log != nil {
		fmt.Fprintf(d.log, format+"\n", args...)
	}
}

// Request asks the coordinator for snapshot id over every container.
func (d *Driver) Request(id string) error {
	m := protocol.Envelope{Version: protocol.Version, Type: protocol.TypeSnapshotRequest, Snapshot: id,
		From: protocol.ClientAddr("test"), To: protocol.Coordinator,
		Body: &protocol.SnapshotRequest{Algorithm: d.alg.Name(), Containers: d.opts.Containers}}
	err := d.coord.Step(m)
	if err != nil {
		d.logf("request %s: refused: %v", id, err)
	}
	d.process()
	return err
}

// process executes every pending Ready until none is left.
func (d *Driver) process() {
	for {
		progressed := false
		if d.coord.HasReady() {
			d.execute("coordinator", d.coord, true)
			progressed = true
		}
		for _, id := range d.order {
			if p := d.parts[id]; p.HasReady() {
				d.execute(id, p, false)
				progressed = true
			}
		}
		if !progressed {
			return
		}
	}
}

func (d *Driver) execute(who string, sm algorithms.Machine, isCoord bool) {
	rd := sm.Ready()
	var outcomes []protocol.Envelope // of ActCommit, stepped back once the Ready is done
	for _, a := range rd.Actions {
		if o, ok := d.action(who, a); ok {
			outcomes = append(outcomes, o)
		}
	}
	crash := isCoord && d.roll(d.opts.Faults.CoordinatorCrash)
	if crash {
		d.logf("coordinator: CRASH before sending %d messages", len(rd.Messages))
		sm.Advance()
		d.CrashCoordinator()
		return
	}
	for _, m := range rd.Messages {
		d.send(m)
	}
	sm.Advance()
	if d.holdCommits {
		d.held = append(d.held, outcomes...)
		return
	}
	for _, o := range outcomes {
		d.stepCoordinator(o)
	}
}

// stepCoordinator feeds the coordinator a message of its own process (a commit's
// outcome, an abort request).
func (d *Driver) stepCoordinator(m protocol.Envelope) {
	if err := d.coord.Step(m); err != nil {
		d.Errors = append(d.Errors, fmt.Sprintf("coordinator stepping %s: %v", m.Type, err))
	}
}

// FailNextCommit makes the next ActCommit fail with reason (as the coordinator's store
// or cut check would): its outcome reports the failure and no decision is recorded.
func (d *Driver) FailNextCommit(reason string) { d.failCommit = reason }

// HoldCommits keeps the outcomes of ActCommit from the coordinator until
// ReleaseCommits (a commit being written).
func (d *Driver) HoldCommits() { d.holdCommits = true }

// ReleaseCommits steps every held commit outcome into the coordinator and stops holding.
func (d *Driver) ReleaseCommits() {
	d.holdCommits = false
	held := d.held
	d.held = nil
	for _, o := range held {
		d.stepCoordinator(o)
	}
	d.process()
}

// RequestAbort asks the coordinator to abort snapshot id (of the epoch it was accepted
// with), as the user, a lost stack lock or a departed node do.
func (d *Driver) RequestAbort(id, reason string) {
	d.logf("coordinator: abort requested for %s: %s", id, reason)
	d.stepCoordinator(algorithms.AbortRequest(id, d.Accepted[id], reason))
	d.process()
}

func (d *Driver) roll(permille int) bool {
	return permille > 0 && d.rng.IntN(1000) < permille
}

func (d *Driver) send(m protocol.Envelope) {
	d.Messages++
	d.logf("%s -> %s: %s%s", m.From, m.To, m.Type, bodyText(m))
	if d.roll(d.opts.Faults.Drop) {
		d.logf("  (dropped)")
		return
	}
	d.net = append(d.net, inflight{m: m})
	if d.roll(d.opts.Faults.Dup) {
		d.net = append(d.net, inflight{m: m})
	}
}

func bodyText(m protocol.Envelope) string {
	if m.Body == nil {
		return ""
	}
	b, err := json.Marshal(m.Body)
	if err != nil || string(b) == "{}" {
		return ""
	}
	return " " + string(b)
}

// action executes a; for an ActCommit it returns the outcome to step back.
func (d *Driver) action(who string, a algorithms.Action) (protocol.Envelope, bool) {
	switch a.Kind {
	case algorithms.ActPersist:
		if a.Container != "" {
			if who != a.Container {
				d.Errors = append(d.Errors, fmt.Sprintf("%s persisted the record of container %q", who, a.Container))
			}
			d.crec[a.Container] = a.Record
			d.logf("%s: persist epoch=%d", a.Container, a.Epoch)
			return protocol.Envelope{}, false
		}
		d.rec = a.Record
		d.Accepted[a.Snapshot] = a.Epoch
		d.logf("coordinator: persist %s epoch=%d", a.Snapshot, a.Epoch)
		return protocol.Envelope{}, false
	case algorithms.ActCommit:
		if reason := d.failCommit; reason != "" {
			// Nothing is written: the last record stays the active one.
			d.failCommit = ""
			d.logf("coordinator: COMMIT %s epoch=%d FAILED: %s", a.Snapshot, a.Epoch, reason)
			return algorithms.CommitDone(a, errors.New(reason)), true
		}
		d.rec = a.Record
		d.Outcomes = append(d.Outcomes, Outcome{Epoch: a.Epoch, Snapshot: a.Snapshot, Committed: true})
		d.logf("coordinator: COMMIT %s epoch=%d", a.Snapshot, a.Epoch)
		return algorithms.CommitDone(a, nil), true
	case algorithms.ActAbort:
		d.rec = a.Record
		d.Outcomes = append(d.Outcomes, Outcome{Epoch: a.Epoch, Snapshot: a.Snapshot, Reason: a.Reason})
		d.logf("coordinator: ABORT %s epoch=%d: %s", a.Snapshot, a.Epoch, a.Reason)
		return protocol.Envelope{}, false
	}
	c, ok := d.cs[a.Container]
	if !ok || (who != "coordinator" && who != a.Container) {
		d.Errors = append(d.Errors, fmt.Sprintf("%s emitted %s for container %q", who, a.Kind, a.Container))
		return protocol.Envelope{}, false
	}
	var err error
	var stats *protocol.DumpStats
	desc := a.Kind.String()
	if a.Peers != nil {
		desc += " peers=" + strings.Join(a.Peers, ",")
	}
	switch a.Kind {
	case algorithms.ActLock:
		if a.Peers == nil {
			c.lockAll = true
		}
		for _, p := range a.Peers {
			c.lockPeer[p] = true
		}
	case algorithms.ActUnlock:
		if a.Peers == nil {
			c.lockAll = false
			clear(c.lockPeer)
		}
		for _, p := range a.Peers {
			delete(c.lockPeer, p)
		}
	case algorithms.ActFreeze:
		c.frozen = true
	case algorithms.ActThaw:
		c.frozen = false
	case algorithms.ActDump:
		if a.LeaveRunning {
			desc += " leave-running"
		}
		rec := Recording{Conns: d.counters(c)}
		if a.ReuseFrom != "" {
			desc += " reuse=" + a.ReuseFrom
			prev, ok := d.Recordings[a.ReuseFrom][c.id]
			if !ok {
				err = fmt.Errorf("no images of %s in snapshot %s", c.id, a.ReuseFrom)
			} else if !d.committed(a.ReuseFrom) {
				// An aborted snapshot's images are collected: reusing them is a bug.
				d.Errors = append(d.Errors, fmt.Sprintf("%s asked to reuse the images of %s, which was not committed", c.id, a.ReuseFrom))
				err = fmt.Errorf("snapshot %s was not committed: its images are gone", a.ReuseFrom)
			}
			rec = Recording{Conns: prev.Conns, ReusedFrom: a.ReuseFrom}
			if prev.ReusedFrom != "" {
				rec.ReusedFrom = prev.ReusedFrom
			}
		}
		if err == nil {
			if d.Recordings[a.Snapshot] == nil {
				d.Recordings[a.Snapshot] = map[string]Recording{}
			}
			d.Recordings[a.Snapshot][c.id] = rec
			stats = &protocol.DumpStats{Conns: rec.Conns, ReusedFrom: rec.ReusedFrom}
			if a.ReuseFrom == "" {
				stats.ImageBytes = 4096
				stats.Conns = d.reported(c)
			} else if d.socks.on {
				stats.Conns = nil // a real worker reads no counters for a reused set
			}
		}
	default:
		d.Errors = append(d.Errors, fmt.Sprintf("%s emitted unknown action %v", who, a.Kind))
		return protocol.Envelope{}, false
	}
	d.logf("%s: %s", a.Container, desc)
	d.net = append(d.net, inflight{m: algorithms.Done(a, err, d.reported(c), stats), local: true})
	return protocol.Envelope{}, false
}

// committed reports whether snapshot id was committed.
func (d *Driver) committed(id string) bool {
	for _, o := range d.Outcomes {
		if o.Snapshot == id && o.Committed {
			return true
		}
	}
	return false
}

// counters returns c's per-connection counters now, sorted by peer.
func (d *Driver) counters(c *container) []protocol.ConnCounter {
	out := make([]protocol.ConnCounter, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, protocol.ConnCounter{Peer: p, Sent: d.chans[chanKey{c.id, p}].sent, Received: d.chans[chanKey{p, c.id}].delivered})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

// deliver hands message i of the network to its receiver.
func (d *Driver) deliver(i int) {
	f := d.net[i]
	d.net = slices.Delete(d.net, i, i+1)
	m := f.m
	var sm algorithms.Machine
	switch m.To.Kind {
	case protocol.KindCoordinator:
		sm = d.coord
	case protocol.KindContainer:
		c, ok := d.cs[m.To.ID]
		if !ok {
			d.Errors = append(d.Errors, fmt.Sprintf("message to unknown %s", m.To))
			return
		}
		if c.muted && !f.local {
			return
		}
		if !f.local && d.roll(d.opts.Faults.WorkerCrash) {
			d.CrashWorker(c.id)
		}
		sm = d.parts[c.id]
	default:
		d.Errors = append(d.Errors, fmt.Sprintf("message to %s", m.To))
		return
	}
	if err := sm.Step(m); err != nil && m.Type != protocol.TypeSnapshotRequest {
		d.logf("%s: error stepping %s from %s: %v", m.To, m.Type, m.From, err)
		d.Errors = append(d.Errors, fmt.Sprintf("%s stepping %s from %s: %v", m.To, m.Type, m.From, err))
	}
	d.process()
}

// DeliverOne delivers one in-flight message chosen by the seeded generator (or the
// oldest when fifo); it reports false when the network is empty.
func (d *Driver) DeliverOne(fifo bool) bool {
	if len(d.net) == 0 {
		return false
	}
	i := 0
	if !fifo {
		i = d.rng.IntN(len(d.net))
	}
	d.deliver(i)
	return true
}

// Tick ticks the coordinator and every container role once.
func (d *Driver) Tick() {
	d.coord.Tick()
	for _, id := range d.order {
		d.parts[id].Tick()
	}
	d.process()
}

// Traffic makes a's application write n bytes to b (nothing if a is frozen) and lets
// every unblocked channel deliver what it carries.
func (d *Driver) Traffic(a, b string, n uint64) bool {
	ch, ok := d.chans[chanKey{a, b}]
	if !ok || d.cs[a].frozen {
		return false
	}
	ch.sent += n
	d.Flow()
	return true
}

// Flow delivers every byte in flight on channels that neither end locks.
func (d *Driver) Flow() {
	for k, ch := range d.chans {
		if ch.delivered < ch.sent && !d.cs[k.from].locks(k.to) && !d.cs[k.to].locks(k.from) {
			ch.delivered = ch.sent
		}
	}
}

// RandomTraffic writes a few bytes on a random channel.
func (d *Driver) RandomTraffic() {
	if len(d.order) == 0 {
		return
	}
	a := d.cs[d.order[d.rng.IntN(len(d.order))]]
	if len(a.peers) == 0 {
		return
	}
	d.Traffic(a.id, a.peers[d.rng.IntN(len(a.peers))], uint64(1+d.rng.IntN(100)))
}

// Mute makes container id never answer: messages to it are dropped (its watchdog runs).
func (d *Driver) Mute(id string) { d.cs[id].muted = true }

// CrashCoordinator replaces the coordinator with one recovered from its last record.
func (d *Driver) CrashCoordinator() {
	c, err := d.alg.RecoverCoordinator(d.opts.Config, d.rec)
	if err != nil {
		d.Errors = append(d.Errors, fmt.Sprintf("recover coordinator: %v", err))
		return
	}
	d.logf("coordinator: restarted from its last record")
	d.coord = c
	d.process()
}

// CrashWorker restarts the worker of container id: its role is rebuilt, Recovering.
func (d *Driver) CrashWorker(id string) {
	d.logf("%s: worker restarted", id)
	d.parts[id] = d.alg.NewContainer(algorithms.ContainerConfig{ID: id, Recovering: true, Record: d.crec[id]})
	d.process()
}

// Drop removes every in-flight message to addr and returns how many.
func (d *Driver) Drop(to protocol.Addr) int {
	n := 0
	d.net = slices.DeleteFunc(d.net, func(f inflight) bool {
		if !f.local && f.m.To == to {
			n++
			return true
		}
		return false
	})
	return n
}

// Duplicate duplicates every in-flight message between processes.
func (d *Driver) Duplicate() int {
	n := len(d.net)
	for i := 0; i < n; i++ {
		if !d.net[i].local {
			d.net = append(d.net, d.net[i])
		}
	}
	return len(d.net) - n
}

// Reverse reverses the delivery order of the in-flight messages.
func (d *Driver) Reverse() { slices.Reverse(d.net) }

// InFlight is the number of messages not yet delivered.
func (d *Driver) InFlight() int { return len(d.net) }

// Held lists the containers left locked or frozen.
func (d *Driver) Held() []string {
	var out []string
	for _, id := range d.order {
		if d.cs[id].held() {
			out = append(out, id)
		}
	}
	return out
}

// Settle stops faults, then delivers and ticks until everything is decided and every
// watchdog has had time to fire.
func (d *Driver) Settle() {
	d.opts.Faults = Faults{}
	cfg := d.opts.Config.WithDefaults()
	limit := int(cfg.Timeout+cfg.WatchdogGrace)*2 + 10
	for range limit {
		for d.DeliverOne(false) {
		}
		d.Tick()
	}
	for d.DeliverOne(false) {
	}
}

// Record returns the last record the coordinator asked to persist.
func (d *Driver) Record() []byte { return d.rec }

// Containers returns the participant set.
func (d *Driver) Containers() []protocol.Container { return d.opts.Containers }

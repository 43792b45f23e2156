package chandylamport

import (
	"fmt"
	"slices"
	"sort"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

type cphase uint8

const (
	cIdle cphase = iota
	cLocking
	cDumping
	cRecorded
)

// Container is the container role: it runs at the worker of the container's node.
type Container struct {
	id   string
	self protocol.Addr

	epoch    uint64
	snapshot string
	started  bool
	ended    bool

	peers     []string
	havePeers bool
	recorded  map[string]bool // peers whose marker arrived
	locked    map[string]bool // peers whose connection this side locked
	frozen    bool
	phase     cphase
	doneSent  bool

	watchdog, ttl uint64

	rd algorithms.Ready
}

var (
	_ algorithms.Machine     = (*Container)(nil)
	_ algorithms.TickSkipper = (*Container)(nil)
)

// NewContainer returns the role of container cfg.ID.
func NewContainer(cfg algorithms.ContainerConfig) *Container {
	c := &Container{id: cfg.ID, self: protocol.ContainerAddr(cfg.ID)}
	if cfg.Recovering {
		c.act(algorithms.Action{Kind: algorithms.ActThaw})
		c.act(algorithms.Action{Kind: algorithms.ActUnlock})
	}
	if r, err := algorithms.DecodeContainerRecord(cfg.Record); err == nil && r.Epoch > 0 {
		// The snapshot of r.Epoch may have held this container before the restart.
		c.epoch, c.snapshot, c.started, c.ended = r.Epoch, r.Snapshot, true, true
	}
	return c
}

func (c *Container) act(a algorithms.Action) {
	a.Container, a.Snapshot, a.Epoch = c.id, c.snapshot, c.epoch
	c.rd.Actions = append(c.rd.Actions, a)
}

func (c *Container) send(to protocol.Addr, t protocol.Type, body any) {
	c.rd.Messages = append(c.rd.Messages, protocol.Envelope{
		Version: protocol.Version, Type: t, Snapshot: c.snapshot, Epoch: c.epoch,
		From: c.self, To: to, Deadline: protocol.Deadline{Ticks: c.watchdog}, Body: body,
	})
}

func (c *Container) release() {
	if c.frozen {
		c.act(algorithms.Action{Kind: algorithms.ActThaw})
		c.frozen = false
	}
	if len(c.locked) > 0 {
		c.act(algorithms.Action{Kind: algorithms.ActUnlock})
		clear(c.locked)
	}
}

func (c *Container) end() {
	c.release()
	c.ended = true
	c.watchdog = 0
}

func (c *Container) fail(msg string) {
	c.end()
	c.send(protocol.Coordinator, protocol.TypeFailed, &protocol.Result{Error: msg})
}

// Step implements algorithms.Machine.
func (c *Container) Step(m protocol.Envelope) error {
	if m.Type == protocol.TypeActionDone {
		return c.stepResult(m)
	}
	switch m.Type {
	case protocol.TypeMarker:
		if m.From != protocol.Coordinator && m.From.Kind != protocol.KindContainer {
			return fmt.Errorf("%s container %s: marker from %s: %w", Name, c.id, m.From, algorithms.ErrUnexpected)
		}
	case protocol.TypeCommit, protocol.TypeAbort, protocol.TypeRelease:
		if m.From != protocol.Coordinator {
			return fmt.Errorf("%s container %s: %s from %s: %w", Name, c.id, m.Type, m.From, algorithms.ErrUnexpected)
		}
	default:
		return fmt.Errorf("%s container %s: %s message: %w", Name, c.id, m.Type, algorithms.ErrUnexpected)
	}
	if m.Epoch < c.epoch {
		return nil
	}
	if m.Epoch > c.epoch || !c.started {
		if c.started && !c.ended {
			c.release()
		}
		*c = Container{id: c.id, self: c.self, rd: c.rd, epoch: m.Epoch, snapshot: m.Snapshot, started: true,
			recorded: map[string]bool{}, locked: map[string]bool{}}
		c.ttl, c.watchdog = m.Deadline.Ticks, m.Deadline.Ticks
		c.act(algorithms.Action{Kind: algorithms.ActPersist, Record: algorithms.ContainerRecord{Epoch: m.Epoch, Snapshot: m.Snapshot}.Encode()})
	}
	if c.ended {
		if m.Type == protocol.TypeMarker {
			c.send(protocol.Coordinator, protocol.TypeFailed, &protocol.Result{Error: "container already released for this snapshot (decision, watchdog or worker restart)"})
		}
		return nil
	}
	switch m.Type {
	case protocol.TypeCommit, protocol.TypeAbort, protocol.TypeRelease:
		c.end()
		return nil
	}
	if m.From == protocol.Coordinator {
		if c.havePeers {
			c.resend() // the coordinator re-sends to containers that are not done
			return nil
		}
		body, _ := m.Body.(*protocol.Marker)
		if body != nil {
			c.peers = body.Peers
		}
		c.havePeers = true
		if c.phase == cIdle {
			c.startRecording()
		}
		return nil
	}
	p := m.From.ID
	if body, _ := m.Body.(*protocol.Marker); body != nil && body.Resend && c.phase == cRecorded {
		c.send(protocol.ContainerAddr(p), protocol.TypeMarker, &protocol.Marker{}) // p may have lost ours
	}
	if c.recorded[p] {
		return nil // duplicate
	}
	c.recorded[p] = true
	if c.phase == cRecorded {
		c.unlockRecorded()
		c.maybeDone()
	}
	return nil
}

// resend answers a repeated coordinator marker: the coordinator has not heard Done.
// Once recorded, c repeats Done if it was sent, else asks every peer whose marker has
// not arrived for it again (with Resend set, so the peer also gets c's marker back if
// it lost it). Before recording, c is waiting for its own actions: nothing to repeat.
func (c *Container) resend() {
	if c.phase != cRecorded {
		return
	}
	if c.doneSent {
		c.send(protocol.Coordinator, protocol.TypeDone, &protocol.Result{})
		return
	}
	for _, p := range c.peers {
		if !c.recorded[p] {
			c.send(protocol.ContainerAddr(p), protocol.TypeMarker, &protocol.Marker{Resend: true})
		}
	}
}

func (c *Container) startRecording() {
	var toLock []string
	for _, p := range c.peers {
		if !c.recorded[p] {
			toLock = append(toLock, p)
		}
	}
	if len(toLock) == 0 {
		c.dump()
		return
	}
	for _, p := range toLock {
		c.locked[p] = true
	}
	c.phase = cLocking
	c.act(algorithms.Action{Kind: algorithms.ActLock, Peers: toLock})
}

func (c *Container) dump() {
	c.phase = cDumping
	c.rd.Actions = slices.Grow(c.rd.Actions, 3)
	c.act(algorithms.Action{Kind: algorithms.ActFreeze})
	c.act(algorithms.Action{Kind: algorithms.ActDump, LeaveRunning: true})
	c.act(algorithms.Action{Kind: algorithms.ActThaw})
}

// unlockRecorded reopens the connections to peers that have recorded.
func (c *Container) unlockRecorded() {
	if len(c.locked) == 0 {
		return
	}
	var open []string
	for p := range c.locked {
		if c.recorded[p] {
			open = append(open, p)
		}
	}
	if len(open) == 0 {
		return
	}
	sort.Strings(open)
	for _, p := range open {
		delete(c.locked, p)
	}
	c.act(algorithms.Action{Kind: algorithms.ActUnlock, Peers: open})
}

func (c *Container) maybeDone() {
	if c.doneSent || c.phase != cRecorded || len(c.locked) > 0 {
		return
	}
	for _, p := range c.peers {
		if !c.recorded[p] {
			return
		}
	}
	c.doneSent = true
	c.send(protocol.Coordinator, protocol.TypeDone, &protocol.Result{})
}

func (c *Container) stepResult(m protocol.Envelope) error {
	r, ok := m.Body.(*protocol.ActionResult)
	if !ok || r == nil {
		return fmt.Errorf("%s container %s: action-done without *ActionResult: %w", Name, c.id, algorithms.ErrUnexpected)
	}
	if m.Epoch != c.epoch || m.Snapshot != c.snapshot || c.ended {
		return nil
	}
	switch r.Op {
	case "lock":
		if c.phase != cLocking {
			return nil
		}
		if r.Error != "" {
			c.fail("lock: " + r.Error)
			return nil
		}
		c.dump()
	case "freeze":
		if r.Error != "" && c.phase == cDumping {
			c.fail("freeze: " + r.Error)
		}
	case "dump":
		if c.phase != cDumping {
			return nil
		}
		if r.Error != "" {
			c.fail("dump: " + r.Error)
			return nil
		}
		c.phase = cRecorded
		c.rd.Messages = slices.Grow(c.rd.Messages, 2+len(c.peers)) // and maybe Done
		c.send(protocol.Coordinator, protocol.TypeDumpDone, &protocol.Result{Dump: r.Dump})
		for _, p := range c.peers {
			c.send(protocol.ContainerAddr(p), protocol.TypeMarker, &protocol.Marker{})
		}
		c.unlockRecorded()
		c.maybeDone()
	}
	return nil
}

// Tick implements algorithms.Machine: the watchdog.
func (c *Container) Tick() {
	if c.watchdog == 0 || c.ended {
		return
	}
	c.watchdog--
	if c.watchdog == 0 {
		c.fail(fmt.Sprintf("watchdog: no decision within %d ticks; container released", c.ttl))
	}
}

// TicksUntilDue implements algorithms.TickSkipper: the watchdog's remaining ticks.
func (c *Container) TicksUntilDue() uint64 {
	if c.ended {
		return 0
	}
	return c.watchdog
}

// SkipTicks implements algorithms.TickSkipper.
func (c *Container) SkipTicks(n uint64) {
	algorithms.SkipWatchdog(&c.watchdog, c.ended, n, c.Tick)
}

// HasReady implements algorithms.Machine.
func (c *Container) HasReady() bool { return !c.rd.Empty() }

// Ready implements algorithms.Machine.
func (c *Container) Ready() algorithms.Ready {
	rd := c.rd
	c.rd = algorithms.Ready{}
	return rd
}

// Advance implements algorithms.Machine.
func (c *Container) Advance() {}

package participant

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Machine is the container role. Create it with New.
type Machine struct {
	id   string
	self protocol.Addr

	epoch    uint64
	snapshot string
	started  bool // a command of epoch was seen
	ended    bool // the snapshot ended for this container

	locked, frozen bool
	lockIssued     bool
	lockPending    int
	lockErr        string
	lockConns      []protocol.ConnCounter
	lockReported   bool

	dumpIssued   bool
	dumpResult   *protocol.Result // answer to repeat for a duplicate dump
	releaseAfter bool

	watchdog uint64 // remaining ticks; 0 = off
	ttl      uint64

	rd algorithms.Ready
}

var (
	_ algorithms.Machine     = (*Machine)(nil)
	_ algorithms.TickSkipper = (*Machine)(nil)
)

// New returns the role of container cfg.ID. A malformed cfg.Record is treated as
// absent after releasing the container (the worker should log it).
func New(cfg algorithms.ContainerConfig) *Machine {
	m := &Machine{id: cfg.ID, self: protocol.ContainerAddr(cfg.ID)}
	if cfg.Recovering {
		m.act(algorithms.Action{Kind: algorithms.ActThaw})
		m.act(algorithms.Action{Kind: algorithms.ActUnlock})
	}
	if r, err := algorithms.DecodeContainerRecord(cfg.Record); err == nil && r.Epoch > 0 {
		// The snapshot of r.Epoch may have held this container before the restart.
		m.epoch, m.snapshot, m.started, m.ended = r.Epoch, r.Snapshot, true, true
	}
	return m
}

func (m *Machine) act(a algorithms.Action) {
	a.Container = m.id
	if a.Snapshot == "" && a.Epoch == 0 {
		a.Snapshot, a.Epoch = m.snapshot, m.epoch
	}
	m.rd.Actions = append(m.rd.Actions, a)
}

func (m *Machine) reply(t protocol.Type, r *protocol.Result) {
	m.rd.Messages = append(m.rd.Messages, protocol.Envelope{
		Version: protocol.Version, Type: t, Snapshot: m.snapshot, Epoch: m.epoch,
		From: m.self, To: protocol.Coordinator, Body: r,
	})
}

// release thaws and unlocks whatever is held.
func (m *Machine) release() {
	if m.frozen {
		m.act(algorithms.Action{Kind: algorithms.ActThaw})
		m.frozen = false
	}
	if m.locked {
		m.act(algorithms.Action{Kind: algorithms.ActUnlock})
		m.locked = false
	}
}

// end finishes the snapshot for this container.
func (m *Machine) end() {
	m.release()
	m.ended = true
	m.watchdog = 0
}

// Step implements algorithms.Machine.
func (m *Machine) Step(e protocol.Envelope) error {
	if e.Type == protocol.TypeActionDone {
		return m.stepResult(e)
	}
	switch e.Type {
	case protocol.TypeLock, protocol.TypeDump, protocol.TypeCommit, protocol.TypeAbort, protocol.TypeRelease:
	default:
		return fmt.Errorf("participant %s: %s message: %w", m.id, e.Type, algorithms.ErrUnexpected)
	}
	if e.From != protocol.Coordinator {
		return fmt.Errorf("participant %s: %s from %s, want coordinator: %w", m.id, e.Type, e.From, algorithms.ErrUnexpected)
	}
	if e.Epoch < m.epoch {
		return nil // stale
	}
	if e.Epoch > m.epoch || !m.started {
		if m.started && !m.ended {
			m.release() // a newer snapshot supersedes an unfinished older one
		}
		*m = Machine{id: m.id, self: m.self, rd: m.rd, epoch: e.Epoch, snapshot: e.Snapshot, started: true}
		m.ttl = e.Deadline.Ticks
		m.watchdog = m.ttl
		m.act(algorithms.Action{Kind: algorithms.ActPersist, Record: algorithms.ContainerRecord{Epoch: e.Epoch, Snapshot: e.Snapshot}.Encode()})
	}
	if m.ended {
		if e.Type == protocol.TypeLock || e.Type == protocol.TypeDump {
			m.reply(protocol.TypeFailed, &protocol.Result{Error: "container already released for this snapshot (decision, release or watchdog)"})
		}
		return nil
	}
	switch e.Type {
	case protocol.TypeLock:
		body, _ := e.Body.(*protocol.Lock)
		if body == nil {
			body = &protocol.Lock{All: true}
		}
		if m.lockIssued {
			if m.lockReported {
				m.reportLock() // duplicate: answer again, the coordinator ignores repeats
			}
			return nil
		}
		m.lockIssued = true
		if body.All || len(body.Peers) > 0 {
			var peers []string
			if !body.All {
				peers = body.Peers
			}
			m.locked = true
			m.act(algorithms.Action{Kind: algorithms.ActLock, Peers: peers})
			m.lockPending++
		}
		if body.Freeze {
			m.frozen = true
			m.act(algorithms.Action{Kind: algorithms.ActFreeze})
			m.lockPending++
		}
		if m.lockPending == 0 {
			m.lockReported = true
			m.reportLock()
		}
	case protocol.TypeDump:
		body, _ := e.Body.(*protocol.Dump)
		if body == nil {
			body = &protocol.Dump{LeaveRunning: true}
		}
		if m.dumpIssued {
			if m.dumpResult != nil {
				m.reply(protocol.TypeDumpDone, m.dumpResult) // duplicate: answer again
			}
			return nil
		}
		if body.Locked && !m.locked {
			m.reply(protocol.TypeFailed, &protocol.Result{Error: "dump of a locked container asked, but this container holds no lock of the snapshot (worker restarted?)"})
			m.end()
			return nil
		}
		m.dumpIssued = true
		m.releaseAfter = body.ReleaseAfter
		m.act(algorithms.Action{Kind: algorithms.ActDump, LeaveRunning: body.LeaveRunning, ReuseFrom: body.ReuseFrom})
	case protocol.TypeCommit, protocol.TypeAbort, protocol.TypeRelease:
		m.end()
	}
	return nil
}

func (m *Machine) reportLock() {
	if m.lockErr != "" {
		m.reply(protocol.TypeFailed, &protocol.Result{Error: m.lockErr})
		return
	}
	m.reply(protocol.TypeLockDone, &protocol.Result{Conns: m.lockConns})
}

func (m *Machine) stepResult(e protocol.Envelope) error {
	r, ok := e.Body.(*protocol.ActionResult)
	if !ok || r == nil {
		return fmt.Errorf("participant %s: action-done without *ActionResult: %w", m.id, algorithms.ErrUnexpected)
	}
	if e.Epoch != m.epoch || e.Snapshot != m.snapshot || m.ended {
		return nil // result of an older snapshot, or after the end (releases): nothing to report
	}
	switch r.Op {
	case "lock", "freeze":
		if !m.lockIssued || m.lockPending == 0 {
			return nil
		}
		if r.Error != "" && m.lockErr == "" {
			m.lockErr = r.Op + ": " + r.Error
		}
		if r.Op == "lock" && r.Conns != nil {
			m.lockConns = r.Conns
		}
		m.lockPending--
		if m.lockPending == 0 {
			m.lockReported = true
			m.reportLock()
			if m.lockErr != "" {
				m.end()
			}
		}
	case "dump":
		if !m.dumpIssued {
			return nil
		}
		if r.Error != "" {
			m.reply(protocol.TypeFailed, &protocol.Result{Error: "dump: " + r.Error})
			m.end()
			return nil
		}
		m.dumpResult = &protocol.Result{Dump: r.Dump}
		m.reply(protocol.TypeDumpDone, m.dumpResult)
		if m.releaseAfter {
			m.release()
		}
	}
	return nil
}

// Tick implements algorithms.Machine: the watchdog.
func (m *Machine) Tick() {
	if m.watchdog == 0 || m.ended {
		return
	}
	m.watchdog--
	if m.watchdog == 0 {
		m.end()
		m.reply(protocol.TypeFailed, &protocol.Result{Error: fmt.Sprintf("watchdog: no decision within %d ticks; container released", m.ttl)})
	}
}

// TicksUntilDue implements algorithms.TickSkipper: the watchdog's remaining ticks.
func (m *Machine) TicksUntilDue() uint64 {
	if m.ended {
		return 0
	}
	return m.watchdog
}

// SkipTicks implements algorithms.TickSkipper.
func (m *Machine) SkipTicks(n uint64) {
	algorithms.SkipWatchdog(&m.watchdog, m.ended, n, m.Tick)
}

// HasReady implements algorithms.Machine.
func (m *Machine) HasReady() bool { return !m.rd.Empty() }

// Ready implements algorithms.Machine.
func (m *Machine) Ready() algorithms.Ready {
	rd := m.rd
	m.rd = algorithms.Ready{}
	return rd
}

// Advance implements algorithms.Machine.
func (m *Machine) Advance() {}

// Held reports whether the machine believes the container is locked or frozen.
func (m *Machine) Held() bool { return m.locked || m.frozen }

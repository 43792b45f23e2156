package sim

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/uncoordinated"
	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// naive is a deliberately wrong algorithm for the checker's negative test: the
// coordinator tells every container to dump (leave running) with no lock and no freeze,
// each container dumps on its own schedule (a delay of 0-49 ticks derived from its id),
// and the coordinator commits when all have dumped. Under traffic the recordings happen at different
// times, so the cut is not consistent, and the checker must say so.
type naive struct{}

func (naive) Name() string                                        { return "naive-uncoordinated" }
func (naive) Guarantees() algorithms.Guarantees                   { return algorithms.Guarantees{} }
func (naive) NewCoordinator(algorithms.Config) algorithms.Machine { return &naiveCoord{} }
func (naive) NewContainer(c algorithms.ContainerConfig) algorithms.Machine {
	return &naiveCont{id: c.ID}
}
func (naive) RecoverCoordinator(c algorithms.Config, _ []byte) (algorithms.Machine, error) {
	return &naiveCoord{}, nil
}

type naiveCoord struct {
	rd     algorithms.Ready
	snap   string
	epoch  uint64
	wait   map[string]bool
	active bool
}

func (c *naiveCoord) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeSnapshotRequest:
		req := m.Body.(*protocol.SnapshotRequest)
		c.snap, c.active = m.Snapshot, true
		c.epoch++
		c.wait = map[string]bool{}
		for _, ct := range req.Containers {
			c.wait[ct.ID] = true
			c.rd.Messages = append(c.rd.Messages, protocol.Envelope{Type: protocol.TypeDump, Snapshot: c.snap,
				Epoch: c.epoch, From: protocol.Coordinator, To: protocol.ContainerAddr(ct.ID),
				Body: &protocol.Dump{LeaveRunning: true}})
		}
	case protocol.TypeDumpDone:
		if m.Snapshot != c.snap || !c.active || !c.wait[m.From.ID] {
			return nil
		}
		delete(c.wait, m.From.ID)
		if len(c.wait) == 0 {
			c.active = false
			c.rd.Actions = append(c.rd.Actions, algorithms.Action{Kind: algorithms.ActCommit, Snapshot: c.snap, Epoch: c.epoch})
		}
	}
	return nil
}
func (c *naiveCoord) Tick()                   {}
func (c *naiveCoord) HasReady() bool          { return !c.rd.Empty() }
func (c *naiveCoord) Ready() algorithms.Ready { rd := c.rd; c.rd = algorithms.Ready{}; return rd }
func (c *naiveCoord) Advance()                {}

type naiveCont struct {
	id      string
	rd      algorithms.Ready
	pending *protocol.Envelope
	wait    int
}

func (c *naiveCont) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeDump:
		h := 0
		for _, b := range []byte(c.id) {
			h = h*31 + int(b)
		}
		c.pending, c.wait = &m, h%50
	case protocol.TypeActionDone:
		c.rd.Messages = append(c.rd.Messages, protocol.Envelope{Type: protocol.TypeDumpDone, Snapshot: m.Snapshot,
			Epoch: m.Epoch, From: protocol.ContainerAddr(c.id), To: protocol.Coordinator, Body: &protocol.Result{}})
	}
	return nil
}
func (c *naiveCont) Tick() {
	if c.pending == nil {
		return
	}
	if c.wait--; c.wait < 0 {
		m := c.pending
		c.pending = nil
		c.rd.Actions = append(c.rd.Actions, algorithms.Action{Kind: algorithms.ActDump, Snapshot: m.Snapshot,
			Epoch: m.Epoch, Container: c.id, LeaveRunning: true})
	}
}
func (c *naiveCont) HasReady() bool          { return !c.rd.Empty() }
func (c *naiveCont) Ready() algorithms.Ready { rd := c.rd; c.rd = algorithms.Ready{}; return rd }
func (c *naiveCont) Advance()                {}

// TestCheckerCatchesUncoordinatedCutUnderTraffic: recordings taken at different times
// under traffic are an inconsistent cut, and the checker names the connections.
func TestCheckerCatchesUncoordinatedCutUnderTraffic(t *testing.T) {
	for _, g := range Graphs {
		t.Run(string(g), func(t *testing.T) {
			cfg := small()
			cfg.Graph, cfg.Rounds = g, 1
			rep, err := Run(cfg, naive{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != "committed" || rep.Verdict == nil {
				t.Fatalf("naive run did not commit:\n%s", rep)
			}
			if rep.Verdict.Consistent() {
				t.Fatalf("uncoordinated cut under traffic reported consistent:\n%s", rep)
			}
			for _, v := range rep.Verdict.Violations {
				if v.From == "" || v.To == "" || v.Conn == "" {
					t.Fatalf("violation does not name both ends and the connection: %s", v.Line())
				}
				switch v.Violation {
				case cut.Orphan: // bytes received after the sender recorded
					if v.Received <= v.Sent {
						t.Fatalf("orphan evidence does not show received > sent: %s", v.Line())
					}
				case cut.Lost: // bytes acknowledged after the receiver recorded
					if v.Acked <= v.Received {
						t.Fatalf("lost evidence does not show acked > received: %s", v.Line())
					}
				default:
					t.Fatalf("unexpected violation kind: %s", v.Line())
				}
			}
		})
	}
}

// TestNoTrafficNoInconsistency is the control for the negative test: the same naive
// algorithm with no application traffic yields a consistent cut, so what the checker
// catches above is the traffic crossing the cut, not an artefact of the simulator.
func TestNoTrafficNoInconsistency(t *testing.T) {
	cfg := small()
	cfg.Rounds, cfg.TrafficBytesPerMs = 1, 0
	rep, err := Run(cfg, naive{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict == nil || !rep.Verdict.Consistent() {
		t.Fatalf("without traffic every cut is consistent:\n%s", rep)
	}
}

// TestCheckerCatchesRealUncoordinatedUnderTraffic: the real uncoordinated algorithm
// (algorithms/uncoordinated) dumps every container without a lock. With CRIU's own
// network lock during each dump, dumps that overlap in time happen to form a consistent
// cut; without it (CRIULock false), the coordinator's fan-out spreads the recordings
// over a few milliseconds under traffic, the cut is not consistent, and the checker
// names the connections.
func TestCheckerCatchesRealUncoordinatedUnderTraffic(t *testing.T) {
	cfg := small()
	cfg.Containers, cfg.Nodes, cfg.Graph = 100, 10, AllToAll
	cfg.CRIULock = false
	rep, err := Run(cfg, uncoordinated.Algorithm())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "committed" || rep.Verdict == nil {
		t.Fatalf("uncoordinated did not commit:\n%s", rep)
	}
	if rep.Verdict.Consistent() {
		t.Fatalf("uncoordinated cut under traffic reported consistent:\n%s", rep)
	}
	if len(rep.Violations) != 0 {
		t.Fatalf("uncoordinated promises no consistent cut, so an inconsistent one is no invariant violation: %v", rep.Violations)
	}
	if rep.Rollback == nil || rep.Rollback.Err != "" {
		t.Fatalf("want a recovery line for uncoordinated, got %+v", rep.Rollback)
	}
}

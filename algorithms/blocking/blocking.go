package blocking

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/internal/coord"
	"github.com/swarmckpt/swarmckpt/algorithms/participant"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Name is the algorithm's name.
const Name = "blocking"

// Algorithm returns the blocking algorithm.
func Algorithm() algorithms.Algorithm {
	return coord.Algo[*Coordinator, *participant.Machine]{AlgoName: Name, Promise: algorithms.Guarantees{ConsistentCut: true},
		New: NewCoordinator, Recover: RecoverCoordinator, Container: participant.New}
}

type phase uint8

const (
	phaseIdle phase = iota
	phaseLocking
	phaseDumping
)

func (p phase) String() string { return [...]string{"idle", "locking", "dumping"}[p] }

// Coordinator is the coordinator role of the blocking algorithm.
type Coordinator struct {
	coord.Base
	phase phase
	acked map[string]bool // containers that answered the current phase
}

var _ algorithms.Machine = (*Coordinator)(nil)

// NewCoordinator returns a fresh coordinator role.
func NewCoordinator(cfg algorithms.Config) *Coordinator {
	c := &Coordinator{}
	c.Init(Name, cfg)
	return c
}

// RecoverCoordinator rebuilds the coordinator from its last record.
func RecoverCoordinator(cfg algorithms.Config, rec []byte) (*Coordinator, error) {
	return coord.RecoverBase(NewCoordinator, cfg, rec)
}

// Step implements algorithms.Machine.
func (c *Coordinator) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeSnapshotRequest:
		req, err := c.Start(m)
		if err != nil || req == nil {
			return err
		}
		c.Persist(nil)
		c.phase = phaseLocking
		c.acked = make(map[string]bool, len(c.Containers))
		c.SendAll(protocol.TypeLock, lockCmd)
		return nil
	case protocol.TypeCommitDone, protocol.TypeAbortRequest:
		if out, reason := c.Decide(m); out == coord.Aborting {
			c.abort(reason)
		}
		return nil
	case protocol.TypeLockDone, protocol.TypeDumpDone, protocol.TypeFailed:
	default:
		return fmt.Errorf("%s coordinator: %s message: %w", Name, m.Type, algorithms.ErrUnexpected)
	}
	if !c.Accept(m) {
		return nil
	}
	switch {
	case m.Type == protocol.TypeFailed:
		c.abort(coord.FailReason(m))
	case m.Type == protocol.TypeLockDone && c.phase == phaseLocking:
		if c.ack(m.From.ID) {
			c.phase = phaseDumping
			clear(c.acked)
			c.SendAll(protocol.TypeDump, dumpCmd)
		}
	case m.Type == protocol.TypeDumpDone && c.phase == phaseDumping:
		if c.ack(m.From.ID) {
			c.phase = phaseIdle
			c.Commit(nil)
		}
	}
	return nil
}

// ack records an answer and reports whether every container has answered.
func (c *Coordinator) ack(id string) bool {
	c.acked[id] = true
	return len(c.acked) == len(c.Containers)
}

func (c *Coordinator) abort(reason string) {
	c.phase = phaseIdle
	c.Abort(reason, nil)
}

// Tick implements algorithms.Machine.
func (c *Coordinator) Tick() {
	if c.Base.Tick() {
		c.abort(c.TimeoutReason(c.phase.String(), func(id string) bool { return !c.acked[id] }))
		return
	}
	if c.ResendDue() {
		for _, ct := range c.Containers {
			if c.acked[ct.ID] {
				continue
			}
			switch c.phase {
			case phaseLocking:
				c.Send(ct.ID, protocol.TypeLock, lockCmd)
			case phaseDumping:
				c.Send(ct.ID, protocol.TypeDump, dumpCmd)
			}
		}
	}
}

// The commands of each phase (shared, read-only).
var (
	lockCmd = &protocol.Lock{All: true, Freeze: true}
	dumpCmd = &protocol.Dump{LeaveRunning: true, Locked: true}
)

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
	// acked: by position in Containers, the containers that answered the current
	// phase (nacked of them).
	acked  []bool
	nacked int
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
		c.acked, c.nacked = make([]bool, len(c.Containers)), 0
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
	i, ok := c.AcceptIndex(m)
	if !ok {
		return nil
	}
	switch {
	case m.Type == protocol.TypeFailed:
		c.abort(coord.FailReason(m))
	case m.Type == protocol.TypeLockDone && c.phase == phaseLocking:
		if c.ack(i) {
			c.phase = phaseDumping
			clear(c.acked)
			c.nacked = 0
			c.SendAll(protocol.TypeDump, dumpCmd)
		}
	case m.Type == protocol.TypeDumpDone && c.phase == phaseDumping:
		if c.ack(i) {
			c.phase = phaseIdle
			c.Commit(nil)
		}
	}
	return nil
}

// ack records an answer of container i (its position) and reports whether every
// container has answered.
func (c *Coordinator) ack(i int) bool {
	if !c.acked[i] {
		c.acked[i] = true
		c.nacked++
	}
	return c.nacked == len(c.Containers)
}

// answered reports whether container id answered in the current phase.
func (c *Coordinator) answered(id string) bool {
	i, ok := c.Index[id]
	return ok && i < len(c.acked) && c.acked[i]
}

func (c *Coordinator) abort(reason string) {
	c.phase = phaseIdle
	c.Abort(reason, nil)
}

// Tick implements algorithms.Machine.
func (c *Coordinator) Tick() {
	if c.Base.Tick() {
		c.abort(c.TimeoutReason(c.phase.String(), func(id string) bool { return !c.answered(id) }))
		return
	}
	if c.ResendDue() {
		for i, ct := range c.Containers {
			if i < len(c.acked) && c.acked[i] {
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

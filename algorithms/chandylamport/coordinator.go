package chandylamport

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/internal/coord"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Name is the algorithm's name.
const Name = "chandy-lamport"

// Algorithm returns the Chandy-Lamport algorithm.
func Algorithm() algorithms.Algorithm {
	return coord.Algo[*Coordinator, *Container]{AlgoName: Name, Promise: algorithms.Guarantees{ConsistentCut: true},
		New: NewCoordinator, Recover: RecoverCoordinator, Container: NewContainer}
}

// Coordinator is the coordinator role.
type Coordinator struct {
	coord.Base
	// done: by position in Containers, the containers that reported done (ndone).
	done  []bool
	ndone int
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
		c.done, c.ndone = make([]bool, len(c.Containers)), 0
		c.GrowMessages(len(c.Containers))
		for _, ct := range c.Containers {
			c.Send(ct.ID, protocol.TypeMarker, &protocol.Marker{Peers: ct.Peers})
		}
		return nil
	case protocol.TypeCommitDone, protocol.TypeAbortRequest:
		if out, reason := c.Decide(m); out == coord.Aborting {
			c.Abort(reason, nil)
		}
		return nil
	case protocol.TypeDumpDone, protocol.TypeDone, protocol.TypeFailed:
	default:
		return fmt.Errorf("%s coordinator: %s message: %w", Name, m.Type, algorithms.ErrUnexpected)
	}
	i, ok := c.AcceptIndex(m)
	if !ok {
		return nil
	}
	switch m.Type {
	case protocol.TypeFailed:
		c.Abort(coord.FailReason(m), nil)
	case protocol.TypeDone:
		if !c.done[i] {
			c.done[i] = true
			c.ndone++
		}
		if c.ndone == len(c.Containers) {
			c.Commit(nil)
		}
	}
	return nil
}

// Tick implements algorithms.Machine.
func (c *Coordinator) Tick() {
	if c.Base.Tick() {
		c.Abort(c.TimeoutReason("recording", func(id string) bool {
			i, ok := c.Index[id]
			return !ok || i >= len(c.done) || !c.done[i]
		}), nil)
		return
	}
	if c.ResendDue() {
		for i, ct := range c.Containers {
			if i >= len(c.done) || !c.done[i] {
				c.Send(ct.ID, protocol.TypeMarker, &protocol.Marker{Peers: ct.Peers})
			}
		}
	}
}

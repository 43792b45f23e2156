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
	done map[string]bool
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
		c.done = make(map[string]bool, len(c.Containers))
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
	if !c.Accept(m) {
		return nil
	}
	switch m.Type {
	case protocol.TypeFailed:
		c.Abort(coord.FailReason(m), nil)
	case protocol.TypeDone:
		c.done[m.From.ID] = true
		if len(c.done) == len(c.Containers) {
			c.Commit(nil)
		}
	}
	return nil
}

// Tick implements algorithms.Machine.
func (c *Coordinator) Tick() {
	if c.Base.Tick() {
		c.Abort(c.TimeoutReason("recording", func(id string) bool { return !c.done[id] }), nil)
		return
	}
	if c.ResendDue() {
		for _, ct := range c.Containers {
			if !c.done[ct.ID] {
				c.Send(ct.ID, protocol.TypeMarker, &protocol.Marker{Peers: ct.Peers})
			}
		}
	}
}

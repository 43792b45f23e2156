package minimal

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/internal/coord"
	"github.com/swarmckpt/swarmckpt/algorithms/participant"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Name is the algorithm's name.
const Name = "minimal"

// Algorithm returns the minimal algorithm (an algorithms.Continuer: its coordinator
// role carries the containers' bases from one snapshot of a stack to the next).
func Algorithm() algorithms.Algorithm {
	return algo{coord.Algo[*Coordinator, *participant.Machine]{AlgoName: Name, Promise: algorithms.Guarantees{ConsistentCut: true},
		New: NewCoordinator, Recover: RecoverCoordinator, Container: participant.New}}
}

type algo struct {
	coord.Algo[*Coordinator, *participant.Machine]
}

var _ algorithms.Continuer = algo{}

// ContinueCoordinator implements algorithms.Continuer.
func (algo) ContinueCoordinator(cfg algorithms.Config, committed []byte) (algorithms.Machine, error) {
	return ContinueCoordinator(cfg, committed)
}

// ContinueCoordinator returns a coordinator role for a stack's next snapshot that
// starts from the bases in committed, the record of the stack's last committed minimal
// snapshot (nil: no bases, every container dumps afresh).
func ContinueCoordinator(cfg algorithms.Config, committed []byte) (*Coordinator, error) {
	c := NewCoordinator(cfg)
	if committed == nil {
		return c, nil
	}
	var r coord.Record
	if err := json.Unmarshal(committed, &r); err != nil {
		return nil, fmt.Errorf("%s: decode record: %v: %w", Name, err, algorithms.ErrBadRecord)
	}
	if r.Algorithm != Name || r.Phase != coord.PhaseCommitted {
		return nil, fmt.Errorf("%s: continue from a %s record of algorithm %q (want a committed %s one): %w", Name, r.Phase, r.Algorithm, Name, algorithms.ErrBadRecord)
	}
	if err := c.setBases(r.State); err != nil {
		return nil, err
	}
	return c, nil
}

// ReusableFrom returns, by container, the snapshot whose images it would reuse if
// idle (its base).
func (c *Coordinator) ReusableFrom() map[string]string {
	out := make(map[string]string, len(c.bases))
	for k, v := range c.bases {
		out[k] = v.Snapshot
	}
	return out
}

// DropBase forgets container id's base (its images are gone): it dumps afresh.
func (c *Coordinator) DropBase(id string) { delete(c.bases, id) }

func (c *Coordinator) setBases(state json.RawMessage) error {
	if len(state) > 0 && string(state) != "null" {
		if err := json.Unmarshal(state, &c.bases); err != nil {
			return fmt.Errorf("%s: record bases: %v: %w", Name, err, algorithms.ErrBadRecord)
		}
		if c.bases == nil {
			c.bases = map[string]Base{}
		}
	}
	return nil
}

// Base is a container's last fresh image: the snapshot it was dumped in and the
// counters it recorded.
type Base struct {
	Snapshot string                 `json:"snapshot"`
	Conns    []protocol.ConnCounter `json:"conns"`
}

type phase uint8

const (
	phaseIdle phase = iota
	phaseLocking
	phaseDumping
)

func (p phase) String() string { return [...]string{"idle", "locking", "dumping"}[p] }

// Coordinator is the coordinator role.
type Coordinator struct {
	coord.Base
	bases map[string]Base // committed bases, by container
	next  map[string]Base // the bases once the commit being written is durable

	phase phase
	acked map[string]bool
	dirty map[string]bool
	fresh map[string][]protocol.ConnCounter // counters of this snapshot's fresh dumps
}

var _ algorithms.Machine = (*Coordinator)(nil)

// NewCoordinator returns a fresh coordinator role.
func NewCoordinator(cfg algorithms.Config) *Coordinator {
	c := &Coordinator{bases: map[string]Base{}}
	c.Init(Name, cfg)
	return c
}

// RecoverCoordinator rebuilds the coordinator (and its bases) from its last record.
func RecoverCoordinator(cfg algorithms.Config, rec []byte) (*Coordinator, error) {
	c := NewCoordinator(cfg)
	state, err := c.Recover(rec)
	if err != nil {
		return nil, err
	}
	if err := c.setBases(state); err != nil {
		return nil, err
	}
	return c, nil
}

// Dirty reports how many containers dumped afresh in the last snapshot that got past
// the lock phase (the rest reused their images).
func (c *Coordinator) Dirty() int { return len(c.dirty) }

// Step implements algorithms.Machine.
func (c *Coordinator) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeSnapshotRequest:
		req, err := c.Start(m)
		if err != nil || req == nil {
			return err
		}
		c.Persist(c.bases)
		c.phase = phaseLocking
		c.acked = make(map[string]bool, len(c.Containers))
		c.dirty = map[string]bool{}
		c.fresh = map[string][]protocol.ConnCounter{}
		c.SendAll(protocol.TypeLock, lockAll)
		return nil
	case protocol.TypeCommitDone, protocol.TypeAbortRequest:
		switch out, reason := c.Decide(m); out {
		case coord.Committed:
			c.bases, c.next = c.next, nil
		case coord.Aborting:
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
	r, _ := m.Body.(*protocol.Result)
	if r == nil {
		r = &protocol.Result{}
	}
	id := m.From.ID
	switch {
	case m.Type == protocol.TypeFailed:
		c.abort(coord.FailReason(m))
	case m.Type == protocol.TypeLockDone && c.phase == phaseLocking:
		if c.acked[id] {
			return nil
		}
		c.acked[id] = true
		if !c.clean(id, r.Conns) {
			c.dirty[id] = true
		}
		if len(c.acked) == len(c.Containers) {
			c.phase = phaseDumping
			clear(c.acked)
			for _, ct := range c.Containers {
				c.Send(ct.ID, protocol.TypeDump, c.dumpCmd(ct.ID))
			}
		}
	case m.Type == protocol.TypeDumpDone && c.phase == phaseDumping:
		if c.acked[id] {
			return nil
		}
		c.acked[id] = true
		// A container told to reuse that dumped afresh instead (its worker found the
		// base's images gone) has a new base too.
		if c.dirty[id] || (r.Dump != nil && r.Dump.ReusedFrom == "" && r.Dump.Conns != nil) {
			conns := r.Conns
			if r.Dump != nil && r.Dump.Conns != nil {
				conns = r.Dump.Conns
			}
			c.fresh[id] = conns
		}
		if len(c.acked) == len(c.Containers) {
			// Only this snapshot's containers keep a base: those of containers gone
			// since (restored ones are new containers) would pile up in the record.
			next := make(map[string]Base, len(c.Containers))
			for _, ct := range c.Containers {
				if b, ok := c.bases[ct.ID]; ok {
					next[ct.ID] = b
				}
			}
			for k, v := range c.fresh {
				next[k] = Base{Snapshot: c.Snapshot, Conns: sorted(v)}
			}
			// The bases change only once the commit is durable: a snapshot whose commit
			// fails is aborted, and its images must not be reused.
			c.next = next
			c.phase = phaseIdle
			c.Commit(next)
		}
	}
	return nil
}

// sorted returns cs sorted by peer, then local address (a real worker's sockets).
func sorted(cs []protocol.ConnCounter) []protocol.ConnCounter {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b protocol.ConnCounter) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Local, b.Local))
	})
	return out
}

// clean reports whether container id carried no byte since its base image: either
// one counter per peer container, each equal to the base's, or a real worker's
// counters, equal to the base's one for one: one per TCP socket (Local set: the same
// sockets, none of which moved a byte), the aggregate ones of an older worker
// (protocol.AllPeers: every connection together, its interfaces' counters), and the
// CPU time it used (protocol.CPUTime).
func (c *Coordinator) clean(id string, now []protocol.ConnCounter) bool {
	b, ok := c.bases[id]
	if !ok || len(b.Conns) != len(now) {
		return false
	}
	n := sorted(now)
	if measured(n) {
		return slices.Equal(n, b.Conns)
	}
	peers := c.Containers[c.Index[id]].Peers
	if len(peers) != len(n) {
		return false
	}
	for i := range n {
		if n[i] != b.Conns[i] {
			return false
		}
	}
	return true
}

// measured reports whether cs are a real worker's counters (see protocol.ConnCounter):
// per socket (Local set), aggregate (protocol.AllPeers) and the CPU time
// (protocol.CPUTime), none per peer container.
func measured(cs []protocol.ConnCounter) bool {
	for _, c := range cs {
		if c.Local == "" && c.Peer != protocol.AllPeers && c.Peer != protocol.CPUTime {
			return false
		}
	}
	return len(cs) > 0
}

// freshDump is the command for a dirty container (shared, read-only).
var freshDump = &protocol.Dump{LeaveRunning: true, ReleaseAfter: true, Locked: true}

// dumpCmd is the dump command for container id: fresh if dirty, else reuse its base.
func (c *Coordinator) dumpCmd(id string) *protocol.Dump {
	if c.dirty[id] {
		return freshDump
	}
	return &protocol.Dump{LeaveRunning: true, ReleaseAfter: true, Locked: true, ReuseFrom: c.bases[id].Snapshot}
}

func (c *Coordinator) abort(reason string) {
	c.phase = phaseIdle
	c.next = nil
	c.Abort(reason, c.bases)
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
				c.Send(ct.ID, protocol.TypeLock, lockAll)
			case phaseDumping:
				c.Send(ct.ID, protocol.TypeDump, c.dumpCmd(ct.ID))
			}
		}
	}
}

var lockAll = &protocol.Lock{All: true}

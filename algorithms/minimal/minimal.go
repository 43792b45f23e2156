package minimal

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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
func (c *Coordinator) DropBase(id string) {
	delete(c.bases, id)
	c.basesJSON = nil
}

// basesState is the committed bases as a record's state.
func (c *Coordinator) basesState() coord.JSONAppender {
	if c.basesJSON != nil {
		return c.basesJSON
	}
	return baseMap(c.bases)
}

func (c *Coordinator) setBases(state json.RawMessage) error {
	if len(state) > 0 && string(state) != "null" {
		c.basesJSON = nil
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

// baseMap is the bases as a record's state: it encodes itself (coord.JSONAppender)
// exactly as json.Marshal encodes a map[string]Base (TestBasesEncoding), without
// reflection: at a million containers the record is written at every snapshot.
type baseMap map[string]Base

// AppendJSON implements coord.JSONAppender.
func (m baseMap) AppendJSON(buf []byte) []byte {
	if m == nil {
		return append(buf, "null"...)
	}
	type entry struct {
		id string
		b  Base
	}
	es := make([]entry, 0, len(m))
	size := 2
	for k, b := range m {
		es = append(es, entry{k, b})
		size += len(k) + len(b.Snapshot) + 30 + len(b.Conns)*60
	}
	// Keys are unique: any sort gives json.Marshal's order.
	slices.SortFunc(es, func(x, y entry) int { return strings.Compare(x.id, y.id) })
	buf = slices.Grow(buf, size)
	buf = append(buf, '{')
	for i, e := range es {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, b := e.id, &e.b
		buf = coord.AppendString(buf, k)
		buf = append(buf, `:{"snapshot":`...)
		buf = coord.AppendString(buf, b.Snapshot)
		buf = append(buf, `,"conns":`...)
		buf = coord.AppendConnCounters(buf, b.Conns)
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

// encoded is a state already encoded (coord.JSONAppender).
type encoded []byte

// AppendJSON implements coord.JSONAppender.
func (e encoded) AppendJSON(buf []byte) []byte { return append(buf, e...) }

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
	// basesJSON and nextJSON are their encodings as a record's state, once known (nil:
	// not known; every snapshot's first record holds the bases, as its commit did).
	basesJSON, nextJSON encoded

	// Per container of the snapshot, by position in Containers: answered in the
	// current phase (nacked of them), dirty (ndirty), dumped afresh (isFresh) with
	// the counters of that dump (fresh).
	phase   phase
	acked   []bool
	nacked  int
	dirty   []bool
	ndirty  int
	isFresh []bool
	fresh   [][]protocol.ConnCounter
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
func (c *Coordinator) Dirty() int { return c.ndirty }

// answered reports whether container id answered in the current phase.
func (c *Coordinator) answered(id string) bool {
	i, ok := c.Index[id]
	return ok && i < len(c.acked) && c.acked[i]
}

// Step implements algorithms.Machine.
func (c *Coordinator) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeSnapshotRequest:
		req, err := c.Start(m)
		if err != nil || req == nil {
			return err
		}
		c.Persist(c.basesState())
		c.phase = phaseLocking
		n := len(c.Containers)
		c.acked, c.nacked = make([]bool, n), 0
		c.dirty, c.ndirty = make([]bool, n), 0
		c.isFresh, c.fresh = make([]bool, n), make([][]protocol.ConnCounter, n)
		c.SendAll(protocol.TypeLock, lockAll)
		return nil
	case protocol.TypeCommitDone, protocol.TypeAbortRequest:
		switch out, reason := c.Decide(m); out {
		case coord.Committed:
			c.bases, c.next = c.next, nil
			c.basesJSON, c.nextJSON = c.nextJSON, nil
		case coord.Aborting:
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
	r, _ := m.Body.(*protocol.Result)
	if r == nil {
		r = &protocol.Result{}
	}
	switch {
	case m.Type == protocol.TypeFailed:
		c.abort(coord.FailReason(m))
	case m.Type == protocol.TypeLockDone && c.phase == phaseLocking:
		if c.acked[i] {
			return nil
		}
		c.acked[i] = true
		c.nacked++
		if !c.clean(i, r.Conns) {
			c.dirty[i] = true
			c.ndirty++
		}
		if c.nacked == len(c.Containers) {
			c.phase = phaseDumping
			clear(c.acked)
			c.nacked = 0
			c.GrowMessages(len(c.Containers))
			for k, ct := range c.Containers {
				c.Send(ct.ID, protocol.TypeDump, c.dumpCmd(k))
			}
		}
	case m.Type == protocol.TypeDumpDone && c.phase == phaseDumping:
		if c.acked[i] {
			return nil
		}
		c.acked[i] = true
		c.nacked++
		// A container told to reuse that dumped afresh instead (its worker found the
		// base's images gone) has a new base too.
		if c.dirty[i] || (r.Dump != nil && r.Dump.ReusedFrom == "" && r.Dump.Conns != nil) {
			conns := r.Conns
			if r.Dump != nil && r.Dump.Conns != nil {
				conns = r.Dump.Conns
			}
			c.isFresh[i], c.fresh[i] = true, sorted(conns)
		}
		if c.nacked == len(c.Containers) {
			// Only this snapshot's containers keep a base: those of containers gone
			// since (restored ones are new containers) would pile up in the record.
			next := make(map[string]Base, len(c.Containers))
			for k, ct := range c.Containers {
				if c.isFresh[k] {
					next[ct.ID] = Base{Snapshot: c.Snapshot, Conns: c.fresh[k]}
				} else if b, ok := c.bases[ct.ID]; ok {
					next[ct.ID] = b
				}
			}
			// The bases change only once the commit is durable: a snapshot whose commit
			// fails is aborted, and its images must not be reused.
			c.next, c.nextJSON = next, baseMap(next).AppendJSON(nil)
			c.phase = phaseIdle
			c.Commit(c.nextJSON)
		}
	}
	return nil
}

// sorted returns cs sorted by peer, then local address (a real worker's sockets).
func sorted(cs []protocol.ConnCounter) []protocol.ConnCounter {
	out := slices.Clone(cs)
	if !strictlySorted(out) {
		slices.SortFunc(out, compareConn)
	}
	return out
}

func compareConn(a, b protocol.ConnCounter) int {
	return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Local, b.Local))
}

// strictlySorted reports whether cs is sorted by peer and local address without
// repeats, the order any sort gives (the counters usually come sorted already).
func strictlySorted(cs []protocol.ConnCounter) bool {
	for i := 1; i < len(cs); i++ {
		if compareConn(cs[i-1], cs[i]) >= 0 {
			return false
		}
	}
	return true
}

// clean reports whether container i of the snapshot carried no byte since its base
// image: either one counter per peer container, each equal to the base's, or a real
// worker's counters, equal to the base's one for one: one per TCP socket (Local set:
// the same sockets, none of which moved a byte), the aggregate ones of an older worker
// (protocol.AllPeers: every connection together, its interfaces' counters), and the
// CPU time it used (protocol.CPUTime).
func (c *Coordinator) clean(i int, now []protocol.ConnCounter) bool {
	b, ok := c.bases[c.Containers[i].ID]
	if !ok || len(b.Conns) != len(now) {
		return false
	}
	n := now
	if !strictlySorted(n) {
		n = sorted(now)
	}
	if measured(n) {
		return slices.Equal(n, b.Conns)
	}
	peers := c.Containers[i].Peers
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

// dumpCmd is the dump command for container i of the snapshot: fresh if dirty, else
// reuse its base.
func (c *Coordinator) dumpCmd(i int) *protocol.Dump {
	if c.dirty[i] {
		return freshDump
	}
	return &protocol.Dump{LeaveRunning: true, ReleaseAfter: true, Locked: true, ReuseFrom: c.bases[c.Containers[i].ID].Snapshot}
}

func (c *Coordinator) abort(reason string) {
	c.phase = phaseIdle
	c.next, c.nextJSON = nil, nil
	c.Abort(reason, c.basesState())
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
				c.Send(ct.ID, protocol.TypeLock, lockAll)
			case phaseDumping:
				c.Send(ct.ID, protocol.TypeDump, c.dumpCmd(i))
			}
		}
	}
}

var lockAll = &protocol.Lock{All: true}

package uncoordinated

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/internal/coord"
	"github.com/swarmckpt/swarmckpt/algorithms/participant"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Name is the algorithm's name.
const Name = "uncoordinated"

// HistoryLimit is how many checkpoints per container the coordinator remembers.
const HistoryLimit = 32

// Algorithm returns the uncoordinated algorithm.
func Algorithm() algorithms.Algorithm {
	return coord.Algo[*Coordinator, *participant.Machine]{AlgoName: Name, Promise: algorithms.Guarantees{ConsistentCut: false},
		New: NewCoordinator, Recover: RecoverCoordinator, Container: participant.New}
}

// Checkpoint is one image of one container: the snapshot it was taken in and its
// recorded per-connection counters.
type Checkpoint struct {
	Snapshot string                 `json:"snapshot"`
	Epoch    uint64                 `json:"epoch"`
	Conns    []protocol.ConnCounter `json:"conns"`
}

// History is every container's checkpoints, oldest first.
type History map[string][]Checkpoint

// AppendJSON appends h as json.Marshal encodes it, without reflection (the coordinator
// records its history at every snapshot; TestHistoryEncoding).
func (h History) AppendJSON(buf []byte) []byte {
	if h == nil {
		return append(buf, "null"...)
	}
	type entry struct {
		id  string
		cps []Checkpoint
	}
	es := make([]entry, 0, len(h))
	size := 2
	for k, cps := range h {
		es = append(es, entry{k, cps})
		size += len(k) + 4
		for _, cp := range cps {
			size += len(cp.Snapshot) + 40 + len(cp.Conns)*60
		}
	}
	// Keys are unique: any sort gives json.Marshal's order.
	slices.SortFunc(es, func(x, y entry) int { return strings.Compare(x.id, y.id) })
	buf = slices.Grow(buf, size)
	buf = append(buf, '{')
	for i, e := range es {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = coord.AppendString(buf, e.id)
		buf = append(buf, ':')
		if e.cps == nil {
			buf = append(buf, "null"...)
			continue
		}
		buf = append(buf, '[')
		for j, cp := range e.cps {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"snapshot":`...)
			buf = coord.AppendString(buf, cp.Snapshot)
			buf = append(buf, `,"epoch":`...)
			buf = strconv.AppendUint(buf, cp.Epoch, 10)
			buf = append(buf, `,"conns":`...)
			buf = coord.AppendConnCounters(buf, cp.Conns)
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

// Coordinator is the coordinator role.
type Coordinator struct {
	coord.Base
	history History
	next    History // the history once the commit being written is durable
	got     map[string][]protocol.ConnCounter
}

var _ algorithms.Machine = (*Coordinator)(nil)

// NewCoordinator returns a fresh coordinator role.
func NewCoordinator(cfg algorithms.Config) *Coordinator {
	c := &Coordinator{history: History{}}
	c.Init(Name, cfg)
	return c
}

// RecoverCoordinator rebuilds the coordinator (and its history) from its last record.
func RecoverCoordinator(cfg algorithms.Config, rec []byte) (*Coordinator, error) {
	c := NewCoordinator(cfg)
	state, err := c.Recover(rec)
	if err != nil {
		return nil, err
	}
	if c.history, err = decodeHistory(state); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeHistory(state json.RawMessage) (History, error) {
	h := History{}
	if len(state) > 0 && string(state) != "null" {
		if err := json.Unmarshal(state, &h); err != nil {
			return nil, fmt.Errorf("%s: record history: %v: %w", Name, err, algorithms.ErrBadRecord)
		}
	}
	return h, nil
}

// HistoryFromRecord extracts the checkpoint history from a coordinator record (for the
// restore path, which computes the RecoveryLine).
func HistoryFromRecord(rec []byte) (History, error) {
	var r coord.Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return nil, fmt.Errorf("%s: decode record: %v: %w", Name, err, algorithms.ErrBadRecord)
	}
	return decodeHistory(r.State)
}

// History returns the committed checkpoint history (shared; do not modify).
func (c *Coordinator) History() History { return c.history }

// Step implements algorithms.Machine.
func (c *Coordinator) Step(m protocol.Envelope) error {
	switch m.Type {
	case protocol.TypeSnapshotRequest:
		req, err := c.Start(m)
		if err != nil || req == nil {
			return err
		}
		c.Persist(c.history)
		c.got = make(map[string][]protocol.ConnCounter, len(c.Containers))
		c.SendAll(protocol.TypeDump, dumpCmd)
		return nil
	case protocol.TypeCommitDone, protocol.TypeAbortRequest:
		switch out, reason := c.Decide(m); out {
		case coord.Committed:
			c.history, c.next = c.next, nil
		case coord.Aborting:
			c.next = nil
			c.Abort(reason, c.history)
		}
		return nil
	case protocol.TypeDumpDone, protocol.TypeFailed:
	default:
		return fmt.Errorf("%s coordinator: %s message: %w", Name, m.Type, algorithms.ErrUnexpected)
	}
	if !c.Accept(m) {
		return nil
	}
	if m.Type == protocol.TypeFailed {
		c.Abort(coord.FailReason(m), c.history)
		return nil
	}
	if _, dup := c.got[m.From.ID]; dup {
		return nil
	}
	var conns []protocol.ConnCounter
	if r, _ := m.Body.(*protocol.Result); r != nil {
		conns = r.Conns
		if r.Dump != nil && r.Dump.Conns != nil {
			conns = r.Dump.Conns
		}
	}
	if conns == nil {
		conns = []protocol.ConnCounter{}
	}
	c.got[m.From.ID] = conns
	if len(c.got) < len(c.Containers) {
		return nil
	}
	next := make(History, len(c.history)+len(c.got))
	for k, v := range c.history {
		next[k] = v
	}
	for id, conns := range c.got {
		h := append(slices.Clone(next[id]), Checkpoint{Snapshot: c.Snapshot, Epoch: c.Epoch, Conns: conns})
		if len(h) > HistoryLimit {
			h = h[len(h)-HistoryLimit:]
		}
		next[id] = h
	}
	// The history changes only once the commit is durable (an aborted snapshot's images
	// are collected: no recovery line may use them).
	c.next = next
	c.Commit(next)
	return nil
}

// Tick implements algorithms.Machine.
func (c *Coordinator) Tick() {
	if c.Base.Tick() {
		c.Abort(c.TimeoutReason("dumping", func(id string) bool { _, ok := c.got[id]; return !ok }), c.history)
		return
	}
	if c.ResendDue() {
		for _, ct := range c.Containers {
			if _, ok := c.got[ct.ID]; !ok {
				c.Send(ct.ID, protocol.TypeDump, dumpCmd)
			}
		}
	}
}

var dumpCmd = &protocol.Dump{LeaveRunning: true}

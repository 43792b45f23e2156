package coord

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// Phases stored in a Record.
const (
	PhaseActive    = "active"
	PhaseCommitted = "committed"
	PhaseAborted   = "aborted"
)

// Record is what a coordinator persists: enough to abort or re-announce its last
// snapshot after a restart, plus algorithm state carried across snapshots.
type Record struct {
	Algorithm  string               `json:"algorithm"`
	Epoch      uint64               `json:"epoch"`
	Snapshot   string               `json:"snapshot"`
	Phase      string               `json:"phase"`
	Reason     string               `json:"reason,omitempty"`
	Containers []protocol.Container `json:"containers"`
	// AllPeers: every container is every other's peer (the coordinator's conservative
	// graph); Containers then carry no Peers, which keeps the record linear in the
	// number of containers (a complete graph of 5,000 would be 25 million names).
	// Records written before it existed list the peers.
	AllPeers bool            `json:"all_peers,omitempty"`
	State    json.RawMessage `json:"state,omitempty"`
}

// complete reports whether cs (valid: Validate passed) is the complete graph.
func complete(cs []protocol.Container) bool {
	for _, c := range cs {
		if len(c.Peers) != len(cs)-1 {
			return false
		}
	}
	return true
}

// withoutPeers returns cs without their Peers.
func withoutPeers(cs []protocol.Container) []protocol.Container {
	out := make([]protocol.Container, len(cs))
	for i, c := range cs {
		out[i] = c
		out[i].Peers = nil
	}
	return out
}

// withAllPeers returns cs with every other container as each one's peer.
func withAllPeers(cs []protocol.Container) []protocol.Container {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	out := make([]protocol.Container, len(cs))
	for i, c := range cs {
		out[i] = c
		out[i].Peers = make([]string, 0, len(cs)-1)
		out[i].Peers = append(append(out[i].Peers, ids[:i]...), ids[i+1:]...)
	}
	return out
}

// Base is the shared part of a coordinator role. Fields are read by the embedding
// algorithm; mutate them only through the methods.
type Base struct {
	Cfg  algorithms.Config
	Name string

	// Epoch is the epoch of the current (or last) snapshot; 0 before the first.
	Epoch uint64
	// Snapshot is the id of the current (or last) snapshot.
	Snapshot string
	// Active is true between an accepted request and its decision.
	Active bool
	// Committing is true between Commit (ActCommit emitted) and the outcome the caller
	// steps back (TypeCommitDone): container messages, timeouts and abort requests are
	// ignored meanwhile, since the commit may already be durable.
	Committing bool
	// Containers is the participant set of the current (or last) snapshot.
	Containers []protocol.Container
	// Index maps a container id to its position in Containers.
	Index map[string]int

	elapsed uint64
	rd      algorithms.Ready
	// recContainers caches the JSON of Containers as a Record holds it (the same for
	// every record of a snapshot); recAllPeers: written as all_peers. Reset wherever
	// Containers is set.
	recContainers []byte
	recAllPeers   bool
}

// Init sets up a fresh Base.
func (b *Base) Init(name string, cfg algorithms.Config) {
	b.Cfg = cfg.WithDefaults()
	b.Name = name
	b.Epoch = b.Cfg.FirstEpoch - 1
}

// Start validates a snapshot request and makes it the active snapshot. It returns
// *algorithms.BusyError while another snapshot is active.
func (b *Base) Start(m protocol.Envelope) (*protocol.SnapshotRequest, error) {
	req, ok := m.Body.(*protocol.SnapshotRequest)
	if !ok || req == nil {
		return nil, fmt.Errorf("%s: snapshot request %q without a *SnapshotRequest body: %w", b.Name, m.Snapshot, algorithms.ErrBadRequest)
	}
	if b.Active {
		if m.Snapshot == b.Snapshot {
			return nil, nil // duplicate of the active request: ignore
		}
		return nil, &algorithms.BusyError{Active: b.Snapshot, Requested: m.Snapshot, Epoch: b.Epoch}
	}
	if m.Snapshot == "" {
		return nil, fmt.Errorf("%s: snapshot request without a snapshot id: %w", b.Name, algorithms.ErrBadRequest)
	}
	if m.Snapshot == b.Snapshot {
		return nil, nil // duplicate of the last (ended) request: ignore
	}
	if req.Algorithm != "" && req.Algorithm != b.Name {
		return nil, fmt.Errorf("%s: snapshot %q asks for algorithm %q: %w", b.Name, m.Snapshot, req.Algorithm, algorithms.ErrBadRequest)
	}
	idx, err := Validate(req.Containers)
	if err != nil {
		return nil, fmt.Errorf("%s: snapshot %q: %w", b.Name, m.Snapshot, err)
	}
	b.Epoch++
	b.Snapshot = m.Snapshot
	b.Active = true
	b.Containers = req.Containers
	b.Index = idx
	b.recContainers = nil
	b.elapsed = 0
	return req, nil
}

// Validate checks a participant set: non-empty, unique ids, peers known, symmetric, no
// self-loops. It returns the id -> position index.
func Validate(cs []protocol.Container) (map[string]int, error) {
	if len(cs) == 0 {
		return nil, fmt.Errorf("no containers: %w", algorithms.ErrBadRequest)
	}
	idx := make(map[string]int, len(cs))
	for i, c := range cs {
		if c.ID == "" {
			return nil, fmt.Errorf("container %d has no id: %w", i, algorithms.ErrBadRequest)
		}
		if _, dup := idx[c.ID]; dup {
			return nil, fmt.Errorf("container %q listed twice: %w", c.ID, algorithms.ErrBadRequest)
		}
		idx[c.ID] = i
	}
	if complete(cs) {
		// Every container lists n-1 peers: the complete graph (symmetric) if each
		// list names only other known containers, each once. Checked without the
		// edge set, whose size would be quadratic.
		seen := make([]int, len(cs))
		for i, c := range cs {
			for _, p := range c.Peers {
				j, ok := idx[p]
				switch {
				case !ok:
					return nil, fmt.Errorf("container %q has peer %q outside the snapshot: %w", c.ID, p, algorithms.ErrBadRequest)
				case j == i:
					return nil, fmt.Errorf("container %q is its own peer: %w", c.ID, algorithms.ErrBadRequest)
				case seen[j] == i+1:
					return nil, fmt.Errorf("container %q lists peer %q twice: %w", c.ID, p, algorithms.ErrBadRequest)
				}
				seen[j] = i + 1
			}
		}
		return idx, nil
	}
	// The peers by position, each container's in a segment of adj (off), sorted in
	// srt: the second pass looks for the reverse edge in the peer's segment, in the
	// same order as the peers are listed.
	total := 0
	for _, c := range cs {
		total += len(c.Peers)
	}
	off := make([]int, len(cs)+1)
	adj := make([]int, 0, total)
	for i, c := range cs {
		for _, p := range c.Peers {
			j, ok := idx[p]
			if !ok {
				return nil, fmt.Errorf("container %q has peer %q outside the snapshot: %w", c.ID, p, algorithms.ErrBadRequest)
			}
			if j == i {
				return nil, fmt.Errorf("container %q is its own peer: %w", c.ID, algorithms.ErrBadRequest)
			}
			adj = append(adj, j)
		}
		off[i+1] = len(adj)
	}
	srt := slices.Clone(adj)
	for i := range cs {
		slices.Sort(srt[off[i]:off[i+1]])
	}
	k := 0
	for i, c := range cs {
		for _, p := range c.Peers {
			j := adj[k]
			if _, found := slices.BinarySearch(srt[off[j]:off[j+1]], i); !found {
				return nil, fmt.Errorf("container %q has peer %q but not the other way round: %w", c.ID, p, algorithms.ErrBadRequest)
			}
			k++
		}
	}
	return idx, nil
}

// Accept reports whether m belongs to the active snapshot and comes from one of its
// containers; stale, duplicate-after-end and foreign messages are not accepted.
func (b *Base) Accept(m protocol.Envelope) bool {
	_, ok := b.AcceptIndex(m)
	return ok
}

// AcceptIndex is Accept that also returns the sender's position in Containers.
func (b *Base) AcceptIndex(m protocol.Envelope) (int, bool) {
	if !b.Active || b.Committing || m.Epoch != b.Epoch || m.Snapshot != b.Snapshot || m.From.Kind != protocol.KindContainer {
		return 0, false
	}
	i, ok := b.Index[m.From.ID]
	return i, ok
}

// Deadline is the watchdog deadline given to containers: the remaining timeout plus grace.
func (b *Base) Deadline() protocol.Deadline {
	rem := uint64(0)
	if b.elapsed < b.Cfg.Timeout {
		rem = b.Cfg.Timeout - b.elapsed
	}
	return protocol.Deadline{Ticks: rem + b.Cfg.WatchdogGrace}
}

// Send queues a message of the active snapshot to container id.
func (b *Base) Send(id string, t protocol.Type, body any) {
	b.rd.Messages = append(b.rd.Messages, protocol.Envelope{
		Version: protocol.Version, Type: t, Snapshot: b.Snapshot, Epoch: b.Epoch,
		From: protocol.Coordinator, To: protocol.ContainerAddr(id), Deadline: b.Deadline(), Body: body,
	})
}

// SendAll queues the same message to every container (bodies are shared, read-only).
func (b *Base) SendAll(t protocol.Type, body any) {
	b.GrowMessages(len(b.Containers))
	for _, c := range b.Containers {
		b.Send(c.ID, t, body)
	}
}

// GrowMessages makes room for n more messages in the next Ready (a fan-out to every
// container appends a million of them at scale).
func (b *Base) GrowMessages(n int) {
	b.rd.Messages = slices.Grow(b.rd.Messages, n)
}

// Record builds the record of the current snapshot with the given phase and state:
// json.Marshal of a Record, byte for byte (TestRecordEncoding), assembled from parts
// since a record is written at every step of a snapshot and holds every container: the
// containers' JSON is encoded once per snapshot, and a state that implements
// JSONAppender encodes itself without reflection.
func (b *Base) Record(phase, reason string, state any) []byte {
	var st []byte
	app, isApp := state.(JSONAppender)
	if state != nil && !isApp {
		s, err := json.Marshal(state)
		if err != nil {
			panic(fmt.Sprintf("%s: state is not JSON-encodable: %v", b.Name, err)) // programming error
		}
		st = s
	}
	if b.recContainers == nil {
		cs := b.Containers
		b.recAllPeers = len(cs) > 2 && complete(cs)
		if b.recAllPeers {
			cs = withoutPeers(cs)
		}
		b.recContainers = appendContainers(nil, cs)
	}
	out := make([]byte, 0, 160+len(b.Name)+len(b.Snapshot)+len(reason)+len(b.recContainers)+len(st))
	out = append(out, `{"algorithm":`...)
	out = AppendString(out, b.Name)
	out = append(out, `,"epoch":`...)
	out = strconv.AppendUint(out, b.Epoch, 10)
	out = append(out, `,"snapshot":`...)
	out = AppendString(out, b.Snapshot)
	out = append(out, `,"phase":`...)
	out = AppendString(out, phase)
	if reason != "" {
		out = append(out, `,"reason":`...)
		out = AppendString(out, reason)
	}
	out = append(out, `,"containers":`...)
	out = append(out, b.recContainers...)
	if b.recAllPeers {
		out = append(out, `,"all_peers":true`...)
	}
	if state != nil {
		out = append(out, `,"state":`...)
		if isApp {
			out = app.AppendJSON(out)
		} else {
			out = append(out, st...)
		}
	}
	return append(out, '}')
}

// JSONAppender is a coordinator state that appends its own JSON encoding to a buffer:
// exactly what json.Marshal would produce for it (compact, HTML-escaped strings).
type JSONAppender interface {
	AppendJSON(buf []byte) []byte
}

// AppendString appends s as a JSON string, as json.Marshal encodes it.
func AppendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // escapes, non-ASCII: let encoding/json decide
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// AppendConnCounters appends cs as json.Marshal encodes a []protocol.ConnCounter.
func AppendConnCounters(buf []byte, cs []protocol.ConnCounter) []byte {
	if cs == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '[')
	for j, cc := range cs {
		if j > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"peer":`...)
		buf = AppendString(buf, cc.Peer)
		buf = append(buf, `,"sent":`...)
		buf = strconv.AppendUint(buf, cc.Sent, 10)
		buf = append(buf, `,"received":`...)
		buf = strconv.AppendUint(buf, cc.Received, 10)
		if cc.Local != "" {
			buf = append(buf, `,"local":`...)
			buf = AppendString(buf, cc.Local)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// appendContainers appends cs as json.Marshal encodes a []protocol.Container.
func appendContainers(buf []byte, cs []protocol.Container) []byte {
	if cs == nil {
		return append(buf, "null"...)
	}
	size := 2
	for _, c := range cs {
		size += len(c.ID) + len(c.Node) + 24
		for _, p := range c.Peers {
			size += len(p) + 3
		}
	}
	buf = slices.Grow(buf, size)
	buf = append(buf, '[')
	for i, c := range cs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"id":`...)
		buf = AppendString(buf, c.ID)
		buf = append(buf, `,"node":`...)
		buf = AppendString(buf, c.Node)
		if len(c.Peers) > 0 {
			buf = append(buf, `,"peers":[`...)
			for j, p := range c.Peers {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = AppendString(buf, p)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// Persist queues an ActPersist of the active snapshot with the algorithm state.
func (b *Base) Persist(state any) {
	b.rd.Actions = append(b.rd.Actions, algorithms.Action{Kind: algorithms.ActPersist, Snapshot: b.Snapshot, Epoch: b.Epoch, Record: b.Record(PhaseActive, "", state)})
}

// Commit asks for the active snapshot to be committed: ActCommit with the record, whose
// state is the algorithm state to keep. The snapshot is decided by the outcome the caller
// steps back (TypeCommitDone, see Decide): on success a Commit goes to every container,
// on failure the algorithm aborts with the state it had before the snapshot.
func (b *Base) Commit(state any) {
	b.rd.Actions = append(b.rd.Actions, algorithms.Action{Kind: algorithms.ActCommit, Snapshot: b.Snapshot, Epoch: b.Epoch, Record: b.Record(PhaseCommitted, "", state)})
	b.Committing = true
}

// Outcome is what Decide found.
type Outcome uint8

// Outcomes of Decide.
const (
	// Undecided: nothing to do (stale, duplicate, or not for the active snapshot).
	Undecided Outcome = iota
	// Committed: the commit is durable; a Commit went to every container. The algorithm
	// keeps the state it passed to Commit.
	Committed
	// Aborting: the algorithm must abort the snapshot (Abort) with the returned reason
	// and the state it had before the snapshot.
	Aborting
)

// Decide handles the messages that decide the active snapshot from outside the
// protocol's containers: TypeCommitDone (the outcome of ActCommit) and
// TypeAbortRequest (the user, a lost stack lock, a node that left). An abort request
// is ignored while the commit is being written and after the decision.
func (b *Base) Decide(m protocol.Envelope) (Outcome, string) {
	if !b.Active || m.Snapshot != b.Snapshot || m.Epoch != b.Epoch {
		return Undecided, ""
	}
	switch m.Type {
	case protocol.TypeCommitDone:
		if !b.Committing {
			return Undecided, ""
		}
		b.Committing = false
		if r, _ := m.Body.(*protocol.Result); r != nil && r.Error != "" {
			return Aborting, r.Error
		}
		b.SendAll(protocol.TypeCommit, &protocol.Decision{})
		b.Active = false
		return Committed, ""
	case protocol.TypeAbortRequest:
		if b.Committing {
			return Undecided, ""
		}
		reason := "abort requested"
		if d, _ := m.Body.(*protocol.Decision); d != nil && d.Reason != "" {
			reason = d.Reason
		}
		return Aborting, reason
	}
	return Undecided, ""
}

// Abort decides the active snapshot aborted: ActAbort with the record, then an Abort to
// every container. state is the algorithm state to keep (as before the snapshot).
func (b *Base) Abort(reason string, state any) {
	b.rd.Actions = append(b.rd.Actions, algorithms.Action{Kind: algorithms.ActAbort, Snapshot: b.Snapshot, Epoch: b.Epoch, Record: b.Record(PhaseAborted, reason, state), Reason: reason})
	b.SendAll(protocol.TypeAbort, &protocol.Decision{Reason: reason})
	b.Active = false
	b.Committing = false
}

// Tick advances time; it returns true when the active snapshot just timed out.
func (b *Base) Tick() bool {
	if !b.Active || b.Committing {
		return false
	}
	b.elapsed++
	return b.elapsed == b.Cfg.Timeout
}

// ResendDue reports whether the current tick is one at which unanswered commands are
// sent again (Config.Resend); call it after Tick returned false.
func (b *Base) ResendDue() bool {
	return b.Active && !b.Committing && b.Cfg.Resend > 0 && b.elapsed%b.Cfg.Resend == 0
}

// Elapsed is the number of ticks since the active snapshot started.
func (b *Base) Elapsed() uint64 { return b.elapsed }

// TimeoutReason describes a timeout waiting for the containers for which waiting is true.
func (b *Base) TimeoutReason(phase string, waiting func(id string) bool) string {
	var missing []string
	n := 0
	for _, c := range b.Containers {
		if waiting(c.ID) {
			n++
			if len(missing) < 3 {
				missing = append(missing, c.ID)
			}
		}
	}
	sort.Strings(missing)
	more := ""
	if n > len(missing) {
		more = fmt.Sprintf(" and %d more", n-len(missing))
	}
	return fmt.Sprintf("timeout after %d ticks in phase %s: no answer from %s%s", b.Cfg.Timeout, phase, strings.Join(missing, ", "), more)
}

// FailReason describes a container's failure report.
func FailReason(m protocol.Envelope) string {
	msg := "failed"
	if r, ok := m.Body.(*protocol.Result); ok && r != nil && r.Error != "" {
		msg = r.Error
	}
	return fmt.Sprintf("container %s: %s", m.From.ID, msg)
}

// Recover loads a record into a fresh Base and returns its algorithm state. An undecided
// snapshot is aborted (ActAbort + Abort to all); a decided one has its decision re-sent.
func (b *Base) Recover(record []byte) (json.RawMessage, error) {
	if record == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(record, &r); err != nil {
		return nil, fmt.Errorf("%s: decode record: %v: %w", b.Name, err, algorithms.ErrBadRecord)
	}
	if r.Algorithm != b.Name {
		return nil, fmt.Errorf("%s: record was written by algorithm %q: %w", b.Name, r.Algorithm, algorithms.ErrBadRecord)
	}
	if r.AllPeers {
		for _, c := range r.Containers {
			if len(c.Peers) > 0 {
				return nil, fmt.Errorf("%s: record of snapshot %q says all_peers but lists peers of %q: %w", b.Name, r.Snapshot, c.ID, algorithms.ErrBadRecord)
			}
		}
		r.Containers = withAllPeers(r.Containers)
	}
	idx, err := Validate(r.Containers)
	if err != nil {
		return nil, fmt.Errorf("%s: record of snapshot %q: %v: %w", b.Name, r.Snapshot, err, algorithms.ErrBadRecord)
	}
	b.Epoch, b.Snapshot, b.Containers, b.Index = r.Epoch, r.Snapshot, r.Containers, idx
	b.recContainers = nil
	switch r.Phase {
	case PhaseActive:
		b.Active = true
		b.Abort("coordinator restarted before the snapshot was decided", rawState(r.State))
	case PhaseCommitted:
		b.SendAll(protocol.TypeCommit, &protocol.Decision{})
	case PhaseAborted:
		b.SendAll(protocol.TypeAbort, &protocol.Decision{Reason: r.Reason})
	default:
		return nil, fmt.Errorf("%s: record phase %q: %w", b.Name, r.Phase, algorithms.ErrBadRecord)
	}
	return r.State, nil
}

// rawState keeps an already-encoded state as is when re-recorded.
type rawState json.RawMessage

func (r rawState) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// HasReady, Ready and Advance implement algorithms.Machine.
func (b *Base) HasReady() bool { return !b.rd.Empty() }

// Ready hands over the queued actions and messages.
func (b *Base) Ready() algorithms.Ready {
	rd := b.rd
	b.rd = algorithms.Ready{}
	return rd
}

// Advance acknowledges the last Ready.
func (b *Base) Advance() {}

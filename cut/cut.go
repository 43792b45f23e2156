package cut

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInconsistent is wrapped by Report.Err when the cut has at least one violation.
var ErrInconsistent = errors.New("cut: inconsistent cut")

// State is the recorded state of every container of one cut.
type State struct {
	// Containers maps a container ID to what that container recorded.
	Containers map[string]*Container
}

// Container is one container's recorded state.
type Container struct {
	// Conns are the connections the container held when it was recorded.
	Conns []Conn
}

// Conn is one container's view of one connection. Local and Remote name the two
// endpoints (for TCP "ip:port"); the peer's view of the same connection has them
// swapped. Counters are byte offsets in each direction's stream, counted from an
// origin shared by both ends of that direction (see package doc).
type Conn struct {
	Local, Remote string
	// Peer is the ID of the container expected at the remote end, or "" when the
	// remote end is outside the cut (then the connection is reported, not checked).
	Peer string
	// Sent is the number of bytes the application wrote into the connection.
	Sent uint64
	// Acked is the number of written bytes the peer acknowledged (<= Sent).
	Acked uint64
	// Received is the number of bytes that arrived from the peer (read by the
	// application or still queued in the socket).
	Received uint64
	// State is the end's TCP state (StateUnknown: treated as established). A FIN
	// counts as one byte of its direction's stream (it has a sequence number).
	State TCPState
}

// Kind classifies a violation.
type Kind int

// Violation kinds.
const (
	// Orphan: the receiver recorded bytes the sender had not yet written.
	Orphan Kind = iota + 1
	// Lost: the sender recorded bytes as acknowledged that the receiver does not hold.
	Lost
	// MissingEndpoint: a connection to a container of the cut has no matching end.
	MissingEndpoint
	// Duplicate: two connections of the cut claim the same endpoints.
	Duplicate
)

func (k Kind) String() string {
	switch k {
	case Orphan:
		return "orphan"
	case Lost:
		return "lost"
	case MissingEndpoint:
		return "missing-endpoint"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Channel is the verdict on one direction From->To of one connection.
type Channel struct {
	From, To string // container IDs (To may be the expected but absent peer)
	// Conn names the direction, "fromLocal->fromRemote".
	Conn string
	// Sent and Acked are the sender's counters, Received the receiver's.
	Sent, Acked, Received uint64
	// Violation is 0 when the direction is consistent.
	Violation Kind
	// Note is set (and Violation 0) for a connection that is not checked as a channel
	// (Report.Unchecked).
	Note Note
	// State is the sending end's TCP state, when known.
	State TCPState
	// Detail explains a violation or a note in words.
	Detail string
}

// OK reports whether the direction is consistent.
func (ch Channel) OK() bool { return ch.Violation == 0 }

// Line renders the channel as one evidence line.
func (ch Channel) Line() string {
	verdict := "ok"
	switch {
	case !ch.OK():
		verdict = "VIOLATION " + ch.Violation.String() + ": " + ch.Detail
	case ch.Note != 0:
		verdict = "not checked, " + ch.Note.String() + ": " + ch.Detail
	}
	return fmt.Sprintf("%s -> %s [%s] sent=%d acked=%d received=%d %s",
		ch.From, ch.To, ch.Conn, ch.Sent, ch.Acked, ch.Received, verdict)
}

// Report is the result of Check.
type Report struct {
	// Channels holds one entry per checked direction (two per connection), ordered by
	// sending container ID, then by the order of its Conns.
	Channels []Channel
	// Violations holds the inconsistent entries of Channels plus endpoint problems.
	Violations []Channel
	// External counts connections whose peer is outside the cut (not checked).
	External int
	// Unchecked lists the ends, one per connection end, that are not channels or whose
	// peer's end can be in no image (Channel.Note says which); not violations.
	Unchecked []Channel
}

// Consistent reports whether the cut has no violation.
func (r *Report) Consistent() bool { return len(r.Violations) == 0 }

// Err returns nil for a consistent cut, else an error wrapping ErrInconsistent that
// names the first violation and how many there are.
func (r *Report) Err() error {
	if r.Consistent() {
		return nil
	}
	v := r.Violations[0]
	return fmt.Errorf("%w: %d violation(s), first: %s", ErrInconsistent, len(r.Violations), v.Line())
}

// Lines returns one evidence line per checked direction, per violation that is not
// a direction (missing endpoints) and per unchecked end: violations first, unchecked
// ends last.
func (r *Report) Lines() []string {
	out := make([]string, 0, len(r.Channels)+len(r.Violations)+len(r.Unchecked))
	for _, v := range r.Violations {
		out = append(out, v.Line())
	}
	for _, ch := range r.Channels {
		if ch.OK() {
			out = append(out, ch.Line())
		}
	}
	for _, ch := range r.Unchecked {
		out = append(out, ch.Line())
	}
	return out
}

// uncheckedSummary is ", 2 pending-connect, 1 peer-closed" (empty without unchecked ends).
func (r *Report) uncheckedSummary() string {
	notes := map[Note]int{}
	for _, u := range r.Unchecked {
		notes[u.Note]++
	}
	var b strings.Builder
	for _, n := range []Note{Pending, PeerClosed, Unpaired, Closed} {
		if notes[n] > 0 {
			fmt.Fprintf(&b, ", %d %s", notes[n], n)
		}
	}
	if notes[Unpaired] > 0 {
		b.WriteString(" (restore resets unpaired connections)")
	}
	return b.String()
}

// Summary is a one-line human summary.
func (r *Report) Summary() string {
	if r.Consistent() {
		return fmt.Sprintf("consistent: %d directions checked, %d external connection(s) not checked%s",
			len(r.Channels), r.External, r.uncheckedSummary())
	}
	kinds := map[Kind]int{}
	for _, v := range r.Violations {
		kinds[v.Violation]++
	}
	var parts []string
	for _, k := range []Kind{Orphan, Lost, MissingEndpoint, Duplicate} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	return fmt.Sprintf("INCONSISTENT: %s (of %d directions checked%s)", strings.Join(parts, ", "), len(r.Channels), r.uncheckedSummary())
}

type endKey struct{ local, remote string }

// pairNote classifies a connection both of whose ends are recorded, by their states:
// note 0 means "a channel: compare the counters". handshake=true means one end is
// still connecting (SYN_SENT) while the other is not: a violation.
func pairNote(a, b TCPState) (note Note, handshake bool) {
	switch {
	case a == TCPSynSent && b == TCPSynSent:
		return Pending, false // simultaneous open, neither end synchronized
	case a == TCPSynSent || b == TCPSynSent:
		return Pending, true
	case a == TCPClose || b == TCPClose:
		return Closed, false
	}
	return 0, false
}

type endRef struct {
	container string
	c         *Container
	idx       int
}

// Check proves the cut consistent or names every offending connection. It never fails:
// problems in the input are reported as violations.
func Check(s State) *Report {
	r := &Report{}
	ids := make([]string, 0, len(s.Containers))
	for id := range s.Containers {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	// The containers in id order, looked up once (a cut of the simulator holds a
	// million).
	cs := make([]*Container, len(ids))
	n := 0
	for k, id := range ids {
		cs[k] = s.Containers[id]
		if c := cs[k]; c != nil {
			n += len(c.Conns)
		}
	}
	index := make(map[endKey]endRef, n)
	for k, id := range ids {
		c := cs[k]
		if c == nil {
			continue
		}
		for i, cn := range c.Conns {
			k := endKey{cn.Local, cn.Remote}
			if prev, dup := index[k]; dup {
				r.Violations = append(r.Violations, Channel{From: id, To: prev.container,
					Conn: cn.Local + "->" + cn.Remote, Violation: Duplicate,
					Detail: fmt.Sprintf("endpoint pair also recorded by %s", prev.container)})
				continue
			}
			index[k] = endRef{id, c, i}
		}
	}

	r.Channels = make([]Channel, 0, n)
	for k, id := range ids {
		c := cs[k]
		if c == nil {
			continue
		}
		for _, a := range c.Conns {
			conn := a.Local + "->" + a.Remote
			peerRef, found := index[endKey{a.Remote, a.Local}]
			if !found {
				if a.Peer == "" {
					r.External++
					continue
				}
				_, present := s.Containers[a.Peer]
				if note, ok := unpairedNote(a.State); ok && present {
					r.Unchecked = append(r.Unchecked, Channel{From: id, To: a.Peer, Conn: conn,
						Sent: a.Sent, Acked: a.Acked, Received: a.Received, State: a.State,
						Note: note, Detail: noteDetail(note, a.State, a.Peer)})
					continue
				}
				detail := fmt.Sprintf("peer %s recorded no end of this connection", a.Peer)
				if !present {
					detail = fmt.Sprintf("peer %s is not in the cut", a.Peer)
				}
				r.Violations = append(r.Violations, Channel{From: id, To: a.Peer,
					Conn: conn, Sent: a.Sent, Acked: a.Acked, State: a.State,
					Violation: MissingEndpoint, Detail: detail})
				continue
			}
			if a.Peer != "" && a.Peer != peerRef.container {
				r.Violations = append(r.Violations, Channel{From: id, To: a.Peer,
					Conn: conn, Violation: MissingEndpoint, State: a.State,
					Detail: fmt.Sprintf("expected peer %s but the other end was recorded by %s", a.Peer, peerRef.container)})
				continue
			}
			b := peerRef.c.Conns[peerRef.idx]
			ch := Channel{From: id, To: peerRef.container, Conn: conn,
				Sent: a.Sent, Acked: a.Acked, Received: b.Received, State: a.State}
			if note, handshake := pairNote(a.State, b.State); note != 0 {
				if !handshake {
					st := a.State
					if note == Closed {
						st = TCPClose // whichever end is over
					}
					ch.Note, ch.Detail = note, noteDetail(note, st, ch.To)
					r.Unchecked = append(r.Unchecked, ch)
					continue
				}
				// One end still connecting while the other holds a synchronized
				// connection: the latter saw a handshake the former had not finished.
				ch.Violation = Orphan
				ch.Detail = fmt.Sprintf("%s holds a %s end of a connection whose connect %s had not completed (%s)", ch.To, b.State, ch.From, a.State)
				if a.State != TCPSynSent {
					ch.Detail = fmt.Sprintf("%s holds a %s end of a connection whose connect %s had not completed (%s)", ch.From, a.State, ch.To, b.State)
				}
				r.Channels = append(r.Channels, ch)
				r.Violations = append(r.Violations, ch)
				continue
			}
			switch {
			case b.Received > a.Sent:
				ch.Violation = Orphan
				ch.Detail = fmt.Sprintf("%s holds %d byte(s) %s had not sent", ch.To, b.Received-a.Sent, ch.From)
			case a.Acked > b.Received:
				ch.Violation = Lost
				ch.Detail = fmt.Sprintf("%d byte(s) acknowledged by %s are in neither image", a.Acked-b.Received, ch.To)
			}
			r.Channels = append(r.Channels, ch)
			if !ch.OK() {
				r.Violations = append(r.Violations, ch)
			}
		}
	}
	return r
}

package cut

import (
	"net/netip"
	"strings"
	"testing"
)

// TestCheckUnpairedEndByState: one end of a connection to a container of the cut that
// recorded no end of it, in every TCP state. Whether the cut needs the peer's end
// depends on the state (docs/algorithms.md, "TCP states at the cut").
func TestCheckUnpairedEndByState(t *testing.T) {
	cases := []struct {
		state     TCPState
		note      Note // 0: a violation
		violation Kind
	}{
		{TCPSynSent, Pending, 0},
		{TCPEstablished, Unpaired, 0},
		{TCPSynRecv, Unpaired, 0},
		{TCPFinWait1, Unpaired, 0},
		{TCPFinWait2, Unpaired, 0},
		{TCPCloseWait, PeerClosed, 0},
		{TCPLastAck, PeerClosed, 0},
		{TCPClosing, PeerClosed, 0},
		{TCPClose, Closed, 0},
		// No socket with a file is in TIME_WAIT or LISTEN with a peer: nonsense input.
		{TCPTimeWait, 0, MissingEndpoint},
		{TCPListen, 0, MissingEndpoint},
		// A hand-built State without states: treated as established, both ends needed.
		{StateUnknown, 0, MissingEndpoint},
	}
	for _, tc := range cases {
		t.Run(tc.state.String(), func(t *testing.T) {
			r := Check(State{Containers: map[string]*Container{
				"a": {Conns: []Conn{{Local: "10.0.0.1:40000", Remote: "10.0.0.2:80", Peer: "b", State: tc.state, Sent: 3}}},
				"b": {},
			}})
			if tc.note == 0 {
				if r.Consistent() || len(r.Violations) != 1 || r.Violations[0].Violation != tc.violation {
					t.Fatalf("want one %v violation, got %s: %q", tc.violation, r.Summary(), r.Lines())
				}
				return
			}
			if !r.Consistent() || len(r.Unchecked) != 1 || r.Unchecked[0].Note != tc.note {
				t.Fatalf("want consistent with one %v end, got %s: %q", tc.note, r.Summary(), r.Lines())
			}
			if len(r.Channels) != 0 || r.External != 0 {
				t.Fatalf("an unpaired end is neither a checked channel nor external: %+v", r)
			}
			u := r.Unchecked[0]
			if u.From != "a" || u.To != "b" || u.State != tc.state || u.Sent != 3 {
				t.Fatalf("unchecked entry %+v", u)
			}
			line := r.Lines()[0]
			if !strings.Contains(line, "not checked, "+tc.note.String()+": ") || !strings.Contains(line, tc.state.String()) {
				t.Fatalf("evidence line %q names neither the note nor the state", line)
			}
			if !strings.Contains(r.Summary(), "1 "+tc.note.String()) {
				t.Fatalf("summary %q does not count the %v end", r.Summary(), tc.note)
			}
		})
	}
}

// TestCheckUnpairedEndPeerNotInCut: the state never excuses a peer that is not part of
// the cut at all, and an end whose peer is outside (external) is counted, in any state.
func TestCheckUnpairedEndPeerNotInCut(t *testing.T) {
	r := Check(State{Containers: map[string]*Container{
		"a": {Conns: []Conn{
			{Local: "10.0.0.1:40000", Remote: "10.0.0.2:80", Peer: "b", State: TCPSynSent},
			{Local: "10.0.0.1:40001", Remote: "192.0.2.9:80", State: TCPSynSent},
			{Local: "10.0.0.1:40002", Remote: "192.0.2.9:80", State: TCPCloseWait},
		}},
	}})
	if r.Consistent() || len(r.Violations) != 1 || r.Violations[0].Violation != MissingEndpoint ||
		!strings.Contains(r.Violations[0].Detail, "not in the cut") {
		t.Fatalf("want one missing endpoint (b is not in the cut): %q", r.Lines())
	}
	if r.External != 2 || len(r.Unchecked) != 0 {
		t.Fatalf("external = %d, unchecked = %d; want 2, 0", r.External, len(r.Unchecked))
	}
}

// st is a socket as CRIU saves it, with its state.
func st(c, l, r string, state TCPState, rcvNxt, inq, writeSeq, outq uint32) Socket {
	s := sock(c, l, r, rcvNxt, inq, writeSeq, outq)
	s.State = uint32(state)
	return s
}

// TestStateFromSocketsPairsByState: both ends recorded, every combination of states a
// connection can be in at a cut, with the counters libsoccr saves in each. x holds
// a->b, y holds b->a. x's stream: data 1000..1099, its FIN (once sent) at 1100; y's
// stream: data 5000..5099, its FIN at 5100.
func TestStateFromSocketsPairsByState(t *testing.T) {
	const a, b = "10.0.0.1:5000", "10.0.0.2:80"
	cases := []struct {
		name string
		x, y Socket
		want []Kind
		note Note // both ends unchecked with this note
	}{
		{"established, in flight", st("x", a, b, TCPEstablished, 5100, 0, 1100, 50),
			st("y", b, a, TCPEstablished, 1080, 0, 5100, 0), nil, 0},
		// x shut down its side: its FIN (unacknowledged) is in write_seq but not in
		// outq_len (50 data bytes unacked + FIN: SIOCOUTQ 51, saved 50). y has not
		// received the 50 bytes: consistent (a plain outq_len subtraction would claim
		// 1051 acknowledged and report a loss).
		{"FIN_WAIT1 / ESTABLISHED", st("x", a, b, TCPFinWait1, 5100, 0, 1101, 50),
			st("y", b, a, TCPEstablished, 1050, 0, 5100, 0), nil, 0},
		{"FIN_WAIT1 / CLOSE_WAIT, FIN arrived, ACK not yet", st("x", a, b, TCPFinWait1, 5100, 0, 1101, 0),
			st("y", b, a, TCPCloseWait, 1101, 10, 5100, 0), nil, 0},
		{"FIN_WAIT2 / CLOSE_WAIT (half-closed)", st("x", a, b, TCPFinWait2, 5100, 0, 1101, 0),
			st("y", b, a, TCPCloseWait, 1101, 0, 5100, 0), nil, 0},
		// y answers after x's FIN (a half-closed connection still carries y's data).
		{"FIN_WAIT2 / CLOSE_WAIT with data back", st("x", a, b, TCPFinWait2, 5060, 0, 1101, 0),
			st("y", b, a, TCPCloseWait, 1101, 0, 5100, 40), nil, 0},
		{"FIN_WAIT2 / LAST_ACK", st("x", a, b, TCPFinWait2, 5100, 0, 1101, 0),
			st("y", b, a, TCPLastAck, 1101, 0, 5101, 0), nil, 0},
		{"CLOSING / CLOSING", st("x", a, b, TCPClosing, 5101, 0, 1101, 0),
			st("y", b, a, TCPClosing, 1101, 0, 5101, 0), nil, 0},
		{"LAST_ACK / FIN_WAIT2", st("x", a, b, TCPLastAck, 5101, 0, 1101, 0),
			st("y", b, a, TCPFinWait2, 1100, 0, 5101, 0), nil, 0},
		// Violations in closing states.
		{"FIN_WAIT2 but peer lacks the acknowledged FIN", st("x", a, b, TCPFinWait2, 5100, 0, 1101, 0),
			st("y", b, a, TCPEstablished, 1100, 0, 5100, 0), []Kind{Lost}, 0},
		{"CLOSE_WAIT on a FIN never sent", st("x", a, b, TCPEstablished, 5100, 0, 1100, 0),
			st("y", b, a, TCPCloseWait, 1101, 0, 5100, 0), []Kind{Orphan}, 0},
		{"FIN_WAIT1, peer lacks acknowledged data", st("x", a, b, TCPFinWait1, 5100, 0, 1101, 50),
			st("y", b, a, TCPEstablished, 1049, 0, 5100, 0), []Kind{Lost}, 0},
		// Handshakes.
		{"simultaneous open, both SYN_SENT", st("x", a, b, TCPSynSent, 0, 0, 1001, 0),
			st("y", b, a, TCPSynSent, 0, 0, 5001, 0), nil, Pending},
		{"SYN_SENT but the peer is established", st("x", a, b, TCPSynSent, 0, 0, 1001, 0),
			st("y", b, a, TCPEstablished, 1001, 0, 5001, 0), []Kind{Orphan, Orphan}, 0},
		// Over: a reset end (CLOSE) has nothing to deliver.
		{"CLOSE / ESTABLISHED", st("x", a, b, TCPClose, 5100, 0, 1100, 0),
			st("y", b, a, TCPEstablished, 1100, 0, 5200, 100), nil, Closed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(StateFromSockets([]string{"x", "y"}, []Socket{tc.x, tc.y}, nil))
			var got []Kind
			for _, v := range r.Violations {
				got = append(got, v.Violation)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("violations %v, want %v: %q", got, tc.want, r.Lines())
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("violation %d = %v, want %v: %q", i, got[i], tc.want[i], r.Lines())
				}
			}
			if tc.note != 0 {
				if len(r.Unchecked) != 2 || r.Unchecked[0].Note != tc.note || r.Unchecked[1].Note != tc.note || len(r.Channels) != 0 {
					t.Fatalf("want both ends unchecked as %v: %q", tc.note, r.Lines())
				}
				return
			}
			if len(r.Channels) != 2 || len(r.Unchecked) != 0 {
				t.Fatalf("checked %d directions and %d unchecked ends, want 2 and 0: %q", len(r.Channels), len(r.Unchecked), r.Lines())
			}
		})
	}
}

// TestStateFromSocketsUnpairedByState: what StateFromSockets makes of ends whose peer
// address belongs to a container of the cut that recorded no end of them: the echo
// client's pending connect, and a server's ends of connections its client had closed.
func TestStateFromSocketsUnpairedByState(t *testing.T) {
	srv, cli := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
	addrs := map[string][]netip.Addr{"server": {srv}, "client": {cli}}
	socks := []Socket{
		st("client", "10.0.0.1:40001", "10.0.0.2:7000", TCPSynSent, 0, 0, 777, 0),
		st("server", "10.0.0.2:7000", "10.0.0.1:40002", TCPCloseWait, 9001, 0, 3000, 0),
		st("server", "10.0.0.2:7000", "10.0.0.1:40003", TCPEstablished, 9001, 0, 3000, 12),
		// A paired, established connection beside them.
		st("client", "10.0.0.1:40004", "10.0.0.2:7000", TCPEstablished, 100, 0, 200, 0),
		st("server", "10.0.0.2:7000", "10.0.0.1:40004", TCPEstablished, 200, 0, 100, 0),
	}
	r := Check(StateFromSockets([]string{"client", "server"}, socks, addrs))
	if !r.Consistent() || len(r.Channels) != 2 || len(r.Unchecked) != 3 {
		t.Fatalf("want consistent, 2 directions, 3 unchecked ends: %s\n%s", r.Summary(), strings.Join(r.Lines(), "\n"))
	}
	want := map[string]Note{"10.0.0.1:40001->10.0.0.2:7000": Pending,
		"10.0.0.2:7000->10.0.0.1:40002": PeerClosed, "10.0.0.2:7000->10.0.0.1:40003": Unpaired}
	for _, u := range r.Unchecked {
		if want[u.Conn] != u.Note {
			t.Errorf("%s: note %v, want %v", u.Conn, u.Note, want[u.Conn])
		}
	}
	for _, s := range []string{"1 pending-connect", "1 peer-closed", "1 unpaired", "restore resets"} {
		if !strings.Contains(r.Summary(), s) {
			t.Errorf("summary %q lacks %q", r.Summary(), s)
		}
	}
}

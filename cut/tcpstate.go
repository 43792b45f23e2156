package cut

import "fmt"

// TCPState is a socket's TCP state, numbered as the kernel numbers it
// (include/net/tcp_states.h) and as CRIU records it in inet_sk_entry.state. The zero
// value means "not known" (a State built by hand without states): such a connection
// is treated as established, so it needs both ends in the cut.
type TCPState uint32

// TCP states. Only those a socket with a file descriptor can be in reach the images:
// CRIU dumps what the processes' file tables hold, never a kernel-only socket (an
// orphan in FIN_WAIT*/TIME_WAIT/LAST_ACK after close(), or a request in a listener's
// SYN queue).
const (
	StateUnknown   TCPState = 0
	TCPEstablished TCPState = 1
	TCPSynSent     TCPState = 2
	TCPSynRecv     TCPState = 3
	TCPFinWait1    TCPState = 4
	TCPFinWait2    TCPState = 5
	TCPTimeWait    TCPState = 6
	TCPClose       TCPState = 7
	TCPCloseWait   TCPState = 8
	TCPLastAck     TCPState = 9
	TCPListen      TCPState = 10
	TCPClosing     TCPState = 11
)

func (s TCPState) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case TCPEstablished:
		return "ESTABLISHED"
	case TCPSynSent:
		return "SYN_SENT"
	case TCPSynRecv:
		return "SYN_RECV"
	case TCPFinWait1:
		return "FIN_WAIT1"
	case TCPFinWait2:
		return "FIN_WAIT2"
	case TCPTimeWait:
		return "TIME_WAIT"
	case TCPClose:
		return "CLOSE"
	case TCPCloseWait:
		return "CLOSE_WAIT"
	case TCPLastAck:
		return "LAST_ACK"
	case TCPListen:
		return "LISTEN"
	case TCPClosing:
		return "CLOSING"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// finUnacked reports whether the socket's own FIN is sent but not acknowledged yet.
// CRIU (libsoccr's refresh_sk) leaves that FIN out of outq_len while write_seq counts
// it, so snd_una = outq_seq - outq_len - 1 in these states.
func (s TCPState) finUnacked() bool {
	switch s {
	case TCPFinWait1, TCPClosing, TCPLastAck:
		return true
	}
	return false
}

// Note says why a connection of the cut is not checked as a channel. Notes are not
// violations: each is a state the cut may legitimately hold (docs/algorithms.md, "TCP
// states at the cut").
type Note int

// Notes.
const (
	// Pending: a connect in progress (SYN_SENT). No byte has crossed yet and the
	// peer's application has not seen the connection: not a channel.
	Pending Note = iota + 1
	// PeerClosed: the end received the peer's FIN (CLOSE_WAIT, LAST_ACK, CLOSING), so
	// every byte the peer wrote arrived, and the peer's end had no file left to record.
	PeerClosed
	// Unpaired: an established (or half-closed by us) end whose peer, a container of
	// the cut, recorded no end: the peer had closed its file or not accepted the
	// connection yet, and its kernel-only end is in no image. Restore resets the
	// connection on its first segment to the peer.
	Unpaired
	// Closed: the connection is over (CLOSE: reset, or closed at both ends while the
	// application still holds the file). Nothing is left to deliver.
	Closed
)

func (n Note) String() string {
	switch n {
	case Pending:
		return "pending-connect"
	case PeerClosed:
		return "peer-closed"
	case Unpaired:
		return "unpaired"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("note(%d)", int(n))
}

// unpairedNote classifies an end whose peer is a container of the cut that recorded no
// matching end. ok=false means the state needs the peer's end: a missing endpoint.
func unpairedNote(s TCPState) (Note, bool) {
	switch s {
	case TCPSynSent:
		return Pending, true
	case TCPCloseWait, TCPLastAck, TCPClosing:
		return PeerClosed, true
	case TCPClose:
		return Closed, true
	case TCPEstablished, TCPFinWait1, TCPFinWait2, TCPSynRecv:
		return Unpaired, true
	}
	return 0, false
}

// noteDetail explains a note in words (the evidence line's verdict).
func noteDetail(n Note, st TCPState, peer string) string {
	switch n {
	case Pending:
		return fmt.Sprintf("pending connect (%s): no byte has crossed, not a channel; restore sends the SYN again", st)
	case PeerClosed:
		return fmt.Sprintf("peer closed (%s): its FIN and every byte before it arrived; %s had closed its end, nothing of it to restore", st, peer)
	case Unpaired:
		return fmt.Sprintf("%s but %s recorded no end: it had closed its end or not accepted the connection yet (the lock held its FIN, RST or the handshake's last ACK); restore resets this connection", st, peer)
	case Closed:
		return fmt.Sprintf("connection over (%s): nothing left to deliver", st)
	}
	return n.String()
}

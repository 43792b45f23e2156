package cut

import (
	"fmt"
	"net/netip"
)

// Socket is one TCP socket with a saved stream, read from a container's CRIU images
// (criuimg.ReadSockets).
//
// CRIU saves (libsoccr, TCP_REPAIR): InqSeq = rcv_nxt, the sequence number of the next
// byte expected from the peer; InqLen = bytes received but not yet read by the
// application; OutqSeq = write_seq, the sequence number following the last byte the
// application wrote; OutqLen = bytes in the send queue not yet acknowledged (sent or
// not); UnsqLen = the unsent part of OutqLen. Hence for the direction local->remote:
// acknowledged up to OutqSeq-OutqLen, transmitted up to OutqSeq-UnsqLen, written up to
// OutqSeq; and from the remote: received (in the kernel) up to InqSeq, delivered to the
// application up to InqSeq-InqLen. On restore CRIU re-queues the whole send queue, so
// what counts as "sent" for the cut is everything written (OutqSeq): unacknowledged
// bytes are retransmitted and duplicates are dropped by the receiving TCP.
//
// State is the socket's TCP state (numbered as TCPState), which CRIU records for every
// socket. A FIN has a sequence number: write_seq counts the socket's own FIN once the
// application shut down its side (FIN_WAIT*, CLOSING, LAST_ACK), rcv_nxt counts the
// peer's once it arrived (CLOSE_WAIT, LAST_ACK, CLOSING); libsoccr leaves an
// unacknowledged own FIN out of OutqLen (Socket.sndUna corrects for it). With
// --tcp-established CRIU saves a stream record for every connected socket, a SYN_SENT
// one too (its write_seq is the initial sequence number + 1, its queues empty).
type Socket struct {
	Container       string
	Ino             uint32
	Local, Remote   netip.AddrPort
	State           uint32
	InqSeq, InqLen  uint32
	OutqSeq         uint32
	OutqLen         uint32
	UnsqLen         uint32
	HasStreamRecord bool
}

func (s Socket) String() string {
	return fmt.Sprintf("%s ino=%d %s->%s %s rcv_nxt=%d inq=%d write_seq=%d outq=%d unsent=%d",
		s.Container, s.Ino, s.Local, s.Remote, TCPState(s.State), s.InqSeq, s.InqLen, s.OutqSeq, s.OutqLen, s.UnsqLen)
}

// sndUna is the sequence number of the first byte the peer has not acknowledged. In
// FIN_WAIT1, CLOSING and LAST_ACK write_seq counts the socket's own FIN, which is not
// acknowledged yet, but CRIU leaves it out of outq_len (libsoccr refresh_sk).
func (s Socket) sndUna() uint32 {
	una := s.OutqSeq - s.OutqLen
	if TCPState(s.State).finUnacked() {
		una--
	}
	return una
}

// seqBefore reports whether sequence number a precedes b (RFC 1982 serial arithmetic).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// StateFromSockets turns sockets into byte counts. For each direction A->B whose two
// ends are both present, counts are offsets from a common origin: the earlier of A's
// snd_una and B's rcv_nxt, so Sent = write_seq_A - origin, Acked = snd_una_A - origin,
// Received = rcv_nxt_B - origin. A socket whose peer is absent gets counts relative to
// its own queues. A pair where either socket has no stream record (CRIU saved no queue
// state, e.g. a connection being closed) is left out: there is nothing to compare.
func StateFromSockets(ids []string, socks []Socket, addrs map[string][]netip.Addr) State {
	st := State{Containers: make(map[string]*Container, len(ids))}
	for _, id := range ids {
		st.Containers[id] = &Container{}
	}
	owner := map[netip.Addr]string{}
	if addrs != nil {
		for id, as := range addrs {
			for _, a := range as {
				owner[a] = id
			}
		}
	} else {
		for _, s := range socks {
			a := s.Local.Addr()
			if !a.IsLoopback() && !a.IsUnspecified() {
				owner[a] = s.Container
			}
		}
	}
	type key struct{ l, r netip.AddrPort }
	byEnds := make(map[key]int, len(socks))
	for i, s := range socks {
		byEnds[key{s.Local, s.Remote}] = i
	}
	conns := make([]Conn, len(socks))
	skip := make([]bool, len(socks))
	for i, s := range socks {
		c := &conns[i]
		c.Local, c.Remote = s.Local.String(), s.Remote.String()
		c.State = TCPState(s.State)
		j, ok := byEnds[key{s.Remote, s.Local}]
		if !ok {
			if o, owned := owner[s.Remote.Addr()]; owned {
				c.Peer = o
			}
			c.Sent = uint64(s.OutqLen)
			c.Received = uint64(s.InqLen)
			continue
		}
		p := socks[j]
		if !s.HasStreamRecord || !p.HasStreamRecord {
			// CRIU saved no queue state (not established, e.g. closing): nothing to
			// compare; left out of the State (still listed in the sockets).
			skip[i] = true
			continue
		}
		c.Peer = p.Container
		// Direction s -> p.
		una := s.sndUna()
		origin := una
		if seqBefore(p.InqSeq, una) {
			origin = p.InqSeq
		}
		c.Sent = uint64(s.OutqSeq - origin)
		c.Acked = uint64(una - origin)
		// Direction p -> s: s's received counter relative to p's origin.
		punA := p.sndUna()
		porigin := punA
		if seqBefore(s.InqSeq, punA) {
			porigin = s.InqSeq
		}
		c.Received = uint64(s.InqSeq - porigin)
	}
	for i, s := range socks {
		if !skip[i] {
			st.Containers[s.Container].Conns = append(st.Containers[s.Container].Conns, conns[i])
		}
	}
	return st
}

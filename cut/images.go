package cut

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	"google.golang.org/protobuf/proto"
)

// ErrNoImages is wrapped when a directory holds no CRIU socket images at all.
var ErrNoImages = errors.New("cut: no CRIU images")

// Linux constants as recorded by CRIU in inet_sk_entry.
const (
	afInet      = 2
	afInet6     = 10
	ipprotoTCP  = 6
	tcpListen   = 10
	tcpStreamFm = "tcp-stream-%x.img"
)

// Socket is one TCP socket with a saved stream, read from a container's CRIU images.
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

// decodeFile decodes every entry of one CRIU image file.
func decodeFile(path string, entry proto.Message) ([]*crit.CriuEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, true).Decode(entry)
	if err != nil {
		return nil, fmt.Errorf("decode CRIU image %s: %w", path, err)
	}
	return img.Entries, nil
}

// addrFrom converts CRIU's address words (the kernel's in-memory network-order bytes,
// stored as host-endian uint32; this package assumes a little-endian host) to netip.
func addrFrom(family uint32, words []uint32) (netip.Addr, error) {
	var b [16]byte
	for i, w := range words {
		if i >= 4 {
			break
		}
		binary.LittleEndian.PutUint32(b[i*4:], w)
	}
	switch family {
	case afInet:
		if len(words) < 1 {
			return netip.Addr{}, errors.New("IPv4 socket without address")
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case afInet6:
		if len(words) < 4 {
			return netip.Addr{}, fmt.Errorf("IPv6 socket with %d address words", len(words))
		}
		return netip.AddrFrom16(b).Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("unknown address family %d", family)
}

// inetEntries returns the inet socket entries of dir: from files.img (CRIU >= 3.x) and,
// for older images, inetsk.img.
func inetEntries(dir string) ([]*sk_inet.InetSkEntry, error) {
	var out []*sk_inet.InetSkEntry
	found := false
	entries, err := decodeFile(filepath.Join(dir, "files.img"), &fdinfo.FileEntry{})
	switch {
	case err == nil:
		found = true
		for _, e := range entries {
			fe, ok := e.Message.(*fdinfo.FileEntry)
			if ok && fe.GetType() == fdinfo.FdTypes_INETSK && fe.GetIsk() != nil {
				out = append(out, fe.GetIsk())
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	entries, err = decodeFile(filepath.Join(dir, "inetsk.img"), &sk_inet.InetSkEntry{})
	switch {
	case err == nil:
		found = true
		for _, e := range entries {
			if isk, ok := e.Message.(*sk_inet.InetSkEntry); ok {
				out = append(out, isk)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s has neither files.img nor inetsk.img (is it a CRIU image directory?): %w", dir, ErrNoImages)
	}
	return out, nil
}

// ReadSockets reads every TCP socket of the CRIU image directory dir, labelled with
// container. Sockets with a saved stream (tcp-stream-<ino>.img, i.e. dumped with
// --tcp-established) have HasStreamRecord set; listening sockets are skipped.
func ReadSockets(container, dir string) ([]Socket, error) {
	isks, err := inetEntries(dir)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", container, err)
	}
	var out []Socket
	for _, isk := range isks {
		if isk.GetProto() != ipprotoTCP || isk.GetState() == tcpListen {
			continue
		}
		local, err := addrFrom(isk.GetFamily(), isk.GetSrcAddr())
		if err != nil {
			return nil, fmt.Errorf("container %s socket ino %d: %w", container, isk.GetIno(), err)
		}
		remote, err := addrFrom(isk.GetFamily(), isk.GetDstAddr())
		if err != nil {
			return nil, fmt.Errorf("container %s socket ino %d: %w", container, isk.GetIno(), err)
		}
		s := Socket{Container: container, Ino: isk.GetIno(), State: isk.GetState(),
			Local:  netip.AddrPortFrom(local, uint16(isk.GetSrcPort())),
			Remote: netip.AddrPortFrom(remote, uint16(isk.GetDstPort()))}
		path := filepath.Join(dir, fmt.Sprintf(tcpStreamFm, isk.GetIno()))
		entries, err := decodeFile(path, &tcp_stream.TcpStreamEntry{})
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("container %s: %w", container, err)
		case len(entries) != 1:
			return nil, fmt.Errorf("container %s: %s holds %d entries, want 1", container, path, len(entries))
		default:
			ts, ok := entries[0].Message.(*tcp_stream.TcpStreamEntry)
			if !ok {
				return nil, fmt.Errorf("container %s: %s: unexpected entry type %T", container, path, entries[0].Message)
			}
			s.HasStreamRecord = true
			s.InqSeq, s.InqLen = ts.GetInqSeq(), ts.GetInqLen()
			s.OutqSeq, s.OutqLen, s.UnsqLen = ts.GetOutqSeq(), ts.GetOutqLen(), ts.GetUnsqLen()
		}
		out = append(out, s)
	}
	return out, nil
}

// FromImages reads the CRIU image directories of a cut (container ID -> directory,
// e.g. runc checkpoint image paths) and returns the State to Check. addrs optionally
// names the IP addresses each container owns; a connection to an owned address whose
// other end is in no image is then reported as a missing endpoint. Without it, the
// non-loopback local addresses of each container's sockets are used.
func FromImages(dirs map[string]string, addrs map[string][]netip.Addr) (State, []Socket, error) {
	ids := make([]string, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var all []Socket
	for _, id := range ids {
		socks, err := ReadSockets(id, dirs[id])
		if err != nil {
			return State{}, nil, err
		}
		all = append(all, socks...)
	}
	st := StateFromSockets(ids, all, addrs)
	return st, all, nil
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

// VerifyImages reads the CRIU image directories of a cut (container ID -> directory) and
// checks it: the entry point for `swarmckpt inspect --verify` and the benchmark harness.
// The error is about reading the images; the verdict is in the Report.
func VerifyImages(dirs map[string]string) (*Report, error) {
	st, _, err := FromImages(dirs, nil)
	if err != nil {
		return nil, err
	}
	return Check(st), nil
}

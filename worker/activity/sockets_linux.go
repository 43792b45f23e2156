package activity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TCP states (include/net/tcp_states.h) of the sockets Sockets lists: every one with a
// peer. LISTEN (no peer), TIME_WAIT (no owner: CRIU does not dump it, and it vanishes by
// itself), CLOSE and NEW_SYN_RECV (a listener's request) are left out.
const tcpStates = 1<<1 | // ESTABLISHED
	1<<2 | // SYN_SENT
	1<<3 | // SYN_RECV
	1<<4 | // FIN_WAIT1
	1<<5 | // FIN_WAIT2
	1<<8 | // CLOSE_WAIT
	1<<9 | // LAST_ACK
	1<<11 // CLOSING

const (
	inetDiagInfo   = 2  // INET_DIAG_INFO: the attribute holding struct tcp_info
	inetDiagMsgLen = 72 // sizeof(struct inet_diag_msg)
	inetDiagReqLen = 56 // sizeof(struct inet_diag_req_v2)
)

// Sockets lists the TCP sockets with a peer of the network namespace at ns (e.g.
// /proc/PID/ns/net), IPv4 and IPv6, with their byte counters (netlink sock_diag,
// INET_DIAG_INFO's tcp_info), sorted by local then remote address.
func Sockets(ns string) ([]Conn, error) {
	f, err := os.Open(ns)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSockets, err)
	}
	defer f.Close()
	type result struct {
		cs  []Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace and is never unlocked: it exits with this
		// goroutine, so nothing else ever runs there.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("%w: enter %s: %w", ErrSockets, ns, err)}
			return
		}
		var out []Conn
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			cs, err := dumpTCP(fam)
			if err != nil {
				done <- result{err: fmt.Errorf("%w: %s: %w", ErrSockets, ns, err)}
				return
			}
			out = append(out, cs...)
		}
		done <- result{cs: out}
	}()
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	SortConns(r.cs)
	return r.cs, nil
}

// dumpTCP asks the calling thread's namespace for its TCP sockets of family fam.
func dumpTCP(fam uint8) ([]Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	req := make([]byte, unix.SizeofNlMsghdr+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // seq
	r := req[unix.SizeofNlMsghdr:]
	r[0], r[1], r[2] = fam, unix.IPPROTO_TCP, 1<<(inetDiagInfo-1)
	ne.PutUint32(r[4:], tcpStates)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	var out []Conn
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		b := buf[:n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(ne.Uint32(b[0:]))
			typ := ne.Uint16(b[4:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return nil, fmt.Errorf("sock_diag: netlink message of %d bytes in %d", l, len(b))
			}
			body := b[unix.SizeofNlMsghdr:l]
			switch typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if e := int32(ne.Uint32(body)); e != 0 {
						return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return out, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				c, err := parseDiag(body)
				if err != nil {
					return nil, err
				}
				out = append(out, c)
			}
			b = b[min(nlAlign(l), len(b)):]
		}
	}
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// parseDiag reads one struct inet_diag_msg and its tcp_info attribute.
func parseDiag(b []byte) (Conn, error) {
	if len(b) < inetDiagMsgLen {
		return Conn{}, fmt.Errorf("sock_diag: message of %d bytes, want %d", len(b), inetDiagMsgLen)
	}
	fam := b[0]
	addr := func(raw []byte) netip.Addr {
		if fam == unix.AF_INET {
			return netip.AddrFrom4([4]byte(raw[:4]))
		}
		return netip.AddrFrom16([16]byte(raw[:16])).Unmap()
	}
	sport, dport := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
	c := Conn{
		Local:  netip.AddrPortFrom(addr(b[8:24]), sport).String(),
		Remote: netip.AddrPortFrom(addr(b[24:40]), dport).String(),
	}
	wqueue := uint64(binary.NativeEndian.Uint32(b[60:]))
	acked, received, ok := tcpInfo(b[inetDiagMsgLen:])
	if !ok {
		return Conn{}, fmt.Errorf("sock_diag: socket %s-%s: %w", c.Local, c.Remote, ErrNoTCPInfo)
	}
	// Every byte the application wrote: acknowledged, or still queued (unacked or
	// unsent: idiag_wqueue = write_seq - snd_una). An ack that arrives later moves bytes
	// from the queue to the acked ones: the sum stays.
	c.Sent = acked + wqueue
	c.Received = received
	return c, nil
}

// Offsets of tcp_info's tcpi_bytes_acked and tcpi_bytes_received.
var (
	offAcked    = int(unsafe.Offsetof(unix.TCPInfo{}.Bytes_acked))
	offReceived = int(unsafe.Offsetof(unix.TCPInfo{}.Bytes_received))
)

// tcpInfo finds INET_DIAG_INFO among the attributes in b and reads its byte counters.
func tcpInfo(b []byte) (acked, received uint64, ok bool) {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return 0, 0, false
		}
		if ne.Uint16(b[2:]) == inetDiagInfo {
			data := b[4:l]
			if len(data) < offReceived+8 {
				return 0, 0, false
			}
			return ne.Uint64(data[offAcked:]), ne.Uint64(data[offReceived:]), true
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return 0, 0, false
}

// ErrNoTCPInfo: the kernel's answer had no tcp_info with byte counters for a socket
// (a kernel older than 4.1).
var ErrNoTCPInfo = errors.New("no tcp_info byte counters from the kernel (Linux >= 4.1 needed)")

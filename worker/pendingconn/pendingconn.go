package pendingconn

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ErrParse is wrapped when a /proc/net/tcp line cannot be read.
var ErrParse = errors.New("pendingconn: unreadable /proc/net/tcp line")

// Ports names a connection by its local and remote ports.
type Ports struct {
	Local, Remote uint16
}

func (p Ports) String() string { return fmt.Sprintf(":%d->:%d", p.Local, p.Remote) }

// tcpSynSent is the kernel's TCP_SYN_SENT, as /proc/net/tcp prints it ("st" 02).
const tcpSynSent = 2

// Entry is one socket of /proc/net/tcp or /proc/net/tcp6.
type Entry struct {
	Local, Remote netip.AddrPort
	State         int
	Inode         uint64
}

// Parse reads /proc/net/tcp or /proc/net/tcp6 (the header line first).
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 10 {
			return nil, fmt.Errorf("%w: %q has %d fields", ErrParse, line, len(f))
		}
		local, err1 := parseAddr(f[1])
		remote, err2 := parseAddr(f[2])
		st, err3 := strconv.ParseInt(f[3], 16, 32)
		ino, err4 := strconv.ParseUint(f[9], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrParse, line, err)
		}
		out = append(out, Entry{Local: local, Remote: remote, State: int(st), Inode: ino})
	}
	return out, sc.Err()
}

// parseAddr reads "0100007F:1F90": the address as the kernel's 32-bit words printed in
// host (little-endian) order, the port in hex.
func parseAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", a)
	}
	for i := 0; i < len(raw); i += 4 { // each word is little endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(raw))
	} else {
		addr = netip.AddrFrom16([16]byte(raw)).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

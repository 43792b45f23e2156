package rewrite

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
)

// Linux constants as CRIU records them in inet_sk_entry.
const (
	afInet         = 2
	afInet6        = 10
	ipprotoTCP     = 6
	tcpEstablished = 1
	tcpListen      = 10
)

// Change is one address rewritten in one socket.
type Change struct {
	// File is the image file, relative to the image directory.
	File string `json:"file"`
	// Ino is the socket's inode number (tcp-stream-<ino hex>.img holds its queues).
	Ino uint32 `json:"ino"`
	// Proto (6 TCP, 17 UDP) and State (1 established, 10 listen, ...) as in the kernel.
	Proto uint32 `json:"proto"`
	State uint32 `json:"state"`
	// Field is "src" (local end) or "dst" (remote end).
	Field string `json:"field"`
	// Old and New are the address and port before and after.
	Old netip.AddrPort `json:"old"`
	New netip.AddrPort `json:"new"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s socket ino %d proto %d state %d %s %s -> %s", c.File, c.Ino, c.Proto, c.State, c.Field, c.Old, c.New)
}

// addrFromWords converts CRIU's address words (the kernel's network-order bytes stored
// as host-endian uint32; little-endian hosts, as cut does) to an address.
func addrFromWords(family uint32, words []uint32) (netip.Addr, error) {
	var b [16]byte
	for i, w := range words {
		if i >= 4 {
			break
		}
		binary.LittleEndian.PutUint32(b[i*4:], w)
	}
	switch family {
	case afInet:
		if len(words) != 1 {
			return netip.Addr{}, fmt.Errorf("IPv4 socket address with %d words", len(words))
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case afInet6:
		if len(words) != 4 {
			return netip.Addr{}, fmt.Errorf("IPv6 socket address with %d words", len(words))
		}
		return netip.AddrFrom16(b), nil
	}
	return netip.Addr{}, fmt.Errorf("unknown address family %d", family)
}

// wordsFromAddr is the inverse of addrFromWords.
func wordsFromAddr(a netip.Addr) []uint32 {
	if a.Is4() {
		b := a.As4()
		return []uint32{binary.LittleEndian.Uint32(b[:])}
	}
	b := a.As16()
	out := make([]uint32, 4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return out
}

// rewriteSocket rewrites the local and remote address of one inet socket entry in
// place and returns what changed. Sockets of other families (none exist in inet
// entries) and addresses that are not in m are left alone. An entry with no address
// words (never bound) has nothing to rewrite.
func rewriteSocket(file string, isk *sk_inet.InetSkEntry, m Map) ([]Change, error) {
	fam := isk.GetFamily()
	if fam != afInet && fam != afInet6 {
		return nil, nil
	}
	var out []Change
	for _, f := range []struct {
		name  string
		words *[]uint32
		port  uint32
	}{{"src", &isk.SrcAddr, isk.GetSrcPort()}, {"dst", &isk.DstAddr, isk.GetDstPort()}} {
		if len(*f.words) == 0 {
			continue
		}
		old, err := addrFromWords(fam, *f.words)
		if err != nil {
			return nil, fmt.Errorf("%w: %s socket ino %d %s: %w", ErrImage, file, isk.GetIno(), f.name, err)
		}
		n, ok := m.Lookup(old)
		if !ok || n == old {
			continue
		}
		*f.words = wordsFromAddr(n)
		out = append(out, Change{File: file, Ino: isk.GetIno(), Proto: isk.GetProto(), State: isk.GetState(),
			Field: f.name, Old: netip.AddrPortFrom(old, uint16(f.port)), New: netip.AddrPortFrom(n, uint16(f.port))})
	}
	return out, nil
}

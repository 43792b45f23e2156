package criuimg

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Linux constants as CRIU records them in inet_sk_entry.
const (
	// FamilyInet and FamilyInet6 are the address families (AF_INET, AF_INET6).
	FamilyInet  = 2
	FamilyInet6 = 10
	// ProtoTCP is IPPROTO_TCP.
	ProtoTCP = 6
	// StateEstablished and StateListen are TCP states (the kernel's numbering; all
	// of them are cut.TCPState).
	StateEstablished = 1
	StateListen      = 10
)

// Addr converts CRIU's address words (the kernel's in-memory network-order bytes,
// stored as host-endian uint32; a little-endian host is assumed) of an address of
// family to an address: one word for FamilyInet, four for FamilyInet6. An IPv4-mapped
// IPv6 address (::ffff:a.b.c.d, what a dual-stack socket records for an IPv4 peer)
// stays mapped; Unmap it to compare it with IPv4 addresses.
func Addr(family uint32, words []uint32) (netip.Addr, error) {
	var b [16]byte
	for i, w := range words {
		if i >= 4 {
			break
		}
		binary.LittleEndian.PutUint32(b[i*4:], w)
	}
	switch family {
	case FamilyInet:
		if len(words) != 1 {
			return netip.Addr{}, fmt.Errorf("IPv4 socket address with %d words", len(words))
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case FamilyInet6:
		if len(words) != 4 {
			return netip.Addr{}, fmt.Errorf("IPv6 socket address with %d words", len(words))
		}
		return netip.AddrFrom16(b), nil
	}
	return netip.Addr{}, fmt.Errorf("unknown address family %d", family)
}

// Words is the inverse of Addr: one word for an IPv4 address, four for an IPv6 one
// (a mapped IPv4 address included).
func Words(a netip.Addr) []uint32 {
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

package rewrite

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	"google.golang.org/protobuf/proto"

	"github.com/swarmckpt/swarmckpt/criuimg"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestNewMapRefusesWhatIsNotAContainerAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    map[netip.Addr]netip.Addr
	}{
		{"loopback old", map[netip.Addr]netip.Addr{ip("127.0.0.1"): ip("10.0.0.2")}},
		{"loopback new", map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("127.0.0.1")}},
		{"unspecified", map[netip.Addr]netip.Addr{ip("0.0.0.0"): ip("10.0.0.2")}},
		{"v6 unspecified", map[netip.Addr]netip.Addr{ip("::"): ip("fd00::2")}},
		{"v6 loopback", map[netip.Addr]netip.Addr{ip("fd00::1"): ip("::1")}},
		{"multicast", map[netip.Addr]netip.Addr{ip("224.0.0.1"): ip("10.0.0.2")}},
		{"link-local", map[netip.Addr]netip.Addr{ip("fe80::1"): ip("fd00::2")}},
		{"family change", map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("fd00::2")}},
		{"two to one", map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("10.0.0.9"), ip("10.0.0.2"): ip("10.0.0.9")}},
	} {
		if _, err := NewMap(tc.m); !errors.Is(err, ErrBadMap) {
			t.Errorf("%s: NewMap(%v) = %v, want ErrBadMap", tc.name, tc.m, err)
		}
	}
	// A swap (a->b, b->a) is a valid map: each old address has one new one.
	if _, err := NewMap(map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("10.0.0.2"), ip("10.0.0.2"): ip("10.0.0.1")}); err != nil {
		t.Errorf("swap refused: %v", err)
	}
}

func TestLookupKeepsIPv4MappedAddressesMapped(t *testing.T) {
	m, err := NewMap(map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("10.0.0.5"), ip("fd00::1"): ip("fd00::5")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"10.0.0.1", "10.0.0.5", true},
		{"::ffff:10.0.0.1", "::ffff:10.0.0.5", true},
		{"fd00::1", "fd00::5", true},
		{"10.0.0.2", "10.0.0.2", false},
		{"127.0.0.1", "127.0.0.1", false},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1", false},
		{"0.0.0.0", "0.0.0.0", false},
		{"::", "::", false},
	} {
		got, ok := m.Lookup(ip(tc.in))
		if got != ip(tc.want) || ok != tc.ok {
			t.Errorf("Lookup(%s) = %s %v, want %s %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMapFileRoundTrip(t *testing.T) {
	m, _ := NewMap(map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("10.0.0.5"), ip("fd00::1"): ip("fd00::5")})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseMap(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("ParseMap(%s): %v", b, err)
	}
	if back.Len() != 2 {
		t.Fatalf("round trip of %s has %d entries", b, back.Len())
	}
	if n, _ := back.Lookup(ip("fd00::1")); n != ip("fd00::5") {
		t.Fatalf("round trip lost fd00::1 -> fd00::5: %s", b)
	}
	for _, bad := range []string{
		`{"version": 2, "addresses": {}}`,
		`{"version": 1, "addresses": {"10.0.0.1": "nope"}}`,
		`{"version": 1, "addresses": {"10.0.0.1": "10.0.0.2"}, "extra": 1}`,
		`{"version": 1, "addresses": {"10.0.0.1": "10.0.0.2", "::ffff:10.0.0.1": "10.0.0.3"}}`,
		`not json`,
	} {
		if _, err := ParseMap(strings.NewReader(bad)); !errors.Is(err, ErrBadMap) {
			t.Errorf("ParseMap(%s) = %v, want ErrBadMap", bad, err)
		}
	}
}

func sock(fam, state uint32, src, dst netip.AddrPort) *sk_inet.InetSkEntry {
	w := func(a netip.Addr) []uint32 {
		if fam == criuimg.FamilyInet6 && a.Is4() {
			a = netip.AddrFrom16(a.As16())
		}
		return criuimg.Words(a)
	}
	return &sk_inet.InetSkEntry{Ino: proto.Uint32(7), Family: proto.Uint32(fam), Proto: proto.Uint32(criuimg.ProtoTCP), State: proto.Uint32(state),
		SrcPort: proto.Uint32(uint32(src.Port())), DstPort: proto.Uint32(uint32(dst.Port())),
		SrcAddr: w(src.Addr()), DstAddr: w(dst.Addr())}
}

func ends(t *testing.T, s *sk_inet.InetSkEntry) (netip.AddrPort, netip.AddrPort) {
	t.Helper()
	l, err := criuimg.Addr(s.GetFamily(), s.GetSrcAddr())
	if err != nil {
		t.Fatal(err)
	}
	r, err := criuimg.Addr(s.GetFamily(), s.GetDstAddr())
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(l, uint16(s.GetSrcPort())), netip.AddrPortFrom(r, uint16(s.GetDstPort()))
}

// TestRewriteSocketBothEndsConsistent: a connection between an IPv4 client and a
// dual-stack server, plus sockets that must not change (loopback, 0.0.0.0 and [::]
// listeners, a peer outside the map).
func TestRewriteSocketBothEndsConsistent(t *testing.T) {
	m, _ := NewMap(map[netip.Addr]netip.Addr{ip("10.0.0.1"): ip("10.0.0.11"), ip("10.0.0.2"): ip("10.0.0.12")})
	ap := netip.MustParseAddrPort
	client := sock(criuimg.FamilyInet, criuimg.StateEstablished, ap("10.0.0.1:40000"), ap("10.0.0.2:7000"))
	server := sock(criuimg.FamilyInet6, criuimg.StateEstablished, ap("10.0.0.2:7000"), ap("10.0.0.1:40000"))
	for _, s := range []*sk_inet.InetSkEntry{client, server} {
		c, err := rewriteSocket("files.img", s, m)
		if err != nil || len(c) != 2 {
			t.Fatalf("rewrite: %v %v, want 2 changes", c, err)
		}
	}
	cl, cr := ends(t, client)
	sl, sr := ends(t, server)
	if cl != ap("10.0.0.11:40000") || cr != ap("10.0.0.12:7000") {
		t.Fatalf("client now %s -> %s", cl, cr)
	}
	if !sl.Addr().Is4In6() || netip.AddrPortFrom(sl.Addr().Unmap(), sl.Port()) != cr || netip.AddrPortFrom(sr.Addr().Unmap(), sr.Port()) != cl {
		t.Fatalf("server now %s -> %s, client %s -> %s: ends disagree", sl, sr, cl, cr)
	}
	for _, s := range []*sk_inet.InetSkEntry{
		sock(criuimg.FamilyInet, criuimg.StateEstablished, ap("127.0.0.1:5000"), ap("127.0.0.1:5001")),
		sock(criuimg.FamilyInet6, criuimg.StateEstablished, ap("[::1]:5000"), ap("[::1]:5001")),
		sock(criuimg.FamilyInet, criuimg.StateListen, ap("0.0.0.0:7000"), ap("0.0.0.0:0")),
		sock(criuimg.FamilyInet6, criuimg.StateListen, ap("[::]:7000"), ap("[::]:0")),
		sock(criuimg.FamilyInet, criuimg.StateEstablished, ap("10.0.0.3:40000"), ap("10.9.9.9:443")),
	} {
		before := proto.Clone(s)
		c, err := rewriteSocket("files.img", s, m)
		if err != nil || len(c) != 0 || !proto.Equal(before, s) {
			t.Errorf("socket %v changed (%v, %v) though none of its addresses is mapped", before, c, err)
		}
	}
	// One end mapped, the other outside the set: only the mapped end moves.
	out := sock(criuimg.FamilyInet, criuimg.StateEstablished, ap("10.0.0.1:40001"), ap("10.9.9.9:443"))
	c, err := rewriteSocket("files.img", out, m)
	if err != nil || len(c) != 1 || c[0].Field != "src" {
		t.Fatalf("connection to an outside peer: %v %v", c, err)
	}
}

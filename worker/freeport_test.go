package worker

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

func TestPickPortStaysBelowTheEphemeralRange(t *testing.T) {
	tried := map[int]bool{}
	free := func(p int) bool { tried[p] = true; return p%7 == 0 }
	for range 200 {
		p, ok := pickPort(32768, rand.IntN, free)
		if !ok || p < 10000 || p >= 20000 || p%7 != 0 {
			t.Fatalf("pickPort = %d, %v; want a free port of [10000, 20000)", p, ok)
		}
	}
	for p := range tried {
		if p < 10000 || p >= 20000 {
			t.Fatalf("tried port %d outside [10000, 20000)", p)
		}
	}
	if p, ok := pickPort(15000, rand.IntN, func(int) bool { return true }); !ok || p >= 15000 {
		t.Fatalf("an ephemeral range from 15000: got %d, %v; want a port below it", p, ok)
	}
	if p, ok := pickPort(32768, rand.IntN, func(int) bool { return false }); ok {
		t.Fatalf("nothing free: got %d", p)
	}
	if p, ok := pickPort(10050, rand.IntN, func(int) bool { return true }); ok {
		t.Fatalf("an ephemeral range starting at 10050 leaves no room: got %d", p)
	}
	if p, ok := pickPort(0, rand.IntN, func(int) bool { return true }); ok {
		t.Fatalf("unknown range: got %d", p)
	}
}

func TestFreePortIsBelowThisHostsEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low <= minPort+100 {
		t.Skipf("SKIPPED LOUDLY: this host's ephemeral range starts at %d, no room below it", low)
	}
	addr, err := freePort("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, ps, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(ps)
	if p >= min(low, maxPort) || p < minPort {
		t.Fatalf("freePort = %s; want a port of [%d, %d)", addr, minPort, min(low, maxPort))
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the picked port is not free: %v", err)
	}
	l.Close()
	if got, _ := freePort("127.0.0.1:4321"); got != "127.0.0.1:4321" {
		t.Fatalf("a given port is kept: %s", got)
	}
}

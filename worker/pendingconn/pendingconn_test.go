package pendingconn

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Lines as the kernel prints them (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c).
const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0300F00A:B5A4 0200F00A:1B58 02 00000001:00000000 01:00000064 00000000     0        0 30763 2 0000000000000000 1000 0 0 0 -1
   1: 0300F00A:B5A6 0200F00A:1B58 01 00000000:00000000 00:00000000 00000000     0        0 30764 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0050 0900007F:A000 02 00000001:00000000 01:00000064 00000000     0        0 0 2 0000000000000000 1000 0 0 0 -1
   3: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30700 1 0000000000000000 100 0 0 10 0
`

const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000300F00A:B5A8 0000000000000000FFFF00000200F00A:1B58 02 00000001:00000000 01:00000064 00000000     0        0 30770 2 0000000000000000 1000 0 0 0 -1
   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 30771 1 0000000000000000 20 4 30 10 -1
`

func TestParse(t *testing.T) {
	es, err := Parse(strings.NewReader(procTCP))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("%d entries, want 4", len(es))
	}
	if es[0].Local != netip.MustParseAddrPort("10.240.0.3:46500") || es[0].Remote != netip.MustParseAddrPort("10.240.0.2:7000") ||
		es[0].State != tcpSynSent || es[0].Inode != 30763 {
		t.Fatalf("entry 0 = %+v", es[0])
	}
	if es[3].State != 10 || es[3].Local != netip.MustParseAddrPort("0.0.0.0:7000") {
		t.Fatalf("listener entry = %+v", es[3])
	}
	es6, err := Parse(strings.NewReader(procTCP6))
	if err != nil {
		t.Fatal(err)
	}
	if es6[0].Local != netip.MustParseAddrPort("10.240.0.3:46504") || es6[0].Inode != 30770 {
		t.Fatalf("v4-mapped entry = %+v", es6[0])
	}
	if es6[1].Local != netip.MustParseAddrPort("[::1]:8080") || es6[1].Remote.Port() != 54321 {
		t.Fatalf("v6 loopback entry = %+v", es6[1])
	}
	if _, err := Parse(strings.NewReader("header\n 0: zz:1 00:0 01 x x x x x 1\n")); !errors.Is(err, ErrParse) {
		t.Fatalf("garbage: err = %v, want ErrParse", err)
	}
}

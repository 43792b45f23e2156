package netcount

import (
	"errors"
	"os"
	"strings"
	"testing"
)

const sample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
  eth1:      30       1    0    0    0     0          0         0       40       2    0    0    0     0       0          0
`

func TestParseSumsAllButLoopback(t *testing.T) {
	c, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{RxBytes: 1030, RxPackets: 11, TxBytes: 2040, TxPackets: 22}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "a\nb\neth0 1 2 3\n", "a\nb\neth0: 1 2 3\n", "a\nb\neth0: x 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%q): %v, want ErrFormat", in, err)
		}
	}
}

// Read of this process's own namespace: the real file parses.
func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/dev"); err != nil {
		t.Skipf("SKIP: no /proc/self/net/dev on this system: %v", err)
	}
	if _, err := Read(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(0); err == nil {
		t.Fatal("Read(0) succeeded")
	}
}

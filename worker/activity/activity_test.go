package activity

import (
	"errors"
	"os"
	"path/filepath"
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
	c, err := ParseNetDev(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{RxBytes: 1030, RxPackets: 11, TxBytes: 2040, TxPackets: 22}
	if !c.Equal(want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "a\nb\neth0 1 2 3\n", "a\nb\neth0: 1 2 3\n", "a\nb\neth0: x 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"} {
		if _, err := ParseNetDev(strings.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseNetDev(%q): %v, want ErrFormat", in, err)
		}
	}
}

// Read of this process's own namespace and cgroup: the real files parse.
func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/dev"); err != nil {
		t.Skipf("SKIP: no /proc/self/net/dev on this system: %v", err)
	}
	c, err := Reader{}.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUNanos == 0 {
		t.Fatalf("this process used no CPU time? %+v", c)
	}
	if _, err := (Reader{}).Read(0); err == nil {
		t.Fatal("Read(0) succeeded")
	}
}

func TestCPUTimeV1AndV2(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpuacct/docker/abc/cpuacct.usage", "12345\n")
	write("unified/system.slice/x/cpu.stat", "usage_usec 7\nuser_usec 5\n")
	if n, err := cpuTime(root, "2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n0::/\n"); err != nil || n != 12345 {
		t.Fatalf("v1: %d, %v; want 12345", n, err)
	}
	if n, err := cpuTime(root, "0::/system.slice/x\n"); err != nil || n != 7000 {
		t.Fatalf("v2: %d, %v; want 7000", n, err)
	}
	if _, err := cpuTime(root, "0::/gone\n"); !errors.Is(err, ErrNoCPU) {
		t.Fatalf("missing cgroup: %v, want ErrNoCPU", err)
	}
}

package activity

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrFormat is returned for a net/dev table this package cannot read.
var ErrFormat = errors.New("activity: unexpected /proc format")

// ErrNoCPU is returned when the container's cgroup has no CPU accounting to read.
var ErrNoCPU = errors.New("no CPU time accounting for the container's cgroup")

// ErrSockets is returned when the TCP sockets of the container's network namespace
// cannot be listed (the namespace is gone, or netlink sock_diag refused).
var ErrSockets = errors.New("activity: cannot list the container's TCP sockets")

// Counters are the bytes and packets every interface but loopback received and sent,
// the CPU time (ns) the container's cgroup used, and every TCP connection of its
// network namespace with its own byte counters.
type Counters struct {
	RxBytes   uint64 `json:"rx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	CPUNanos  uint64 `json:"cpu_ns"`
	// Conns are the TCP sockets with a peer (any state but LISTEN, TIME_WAIT, CLOSE),
	// loopback ones included, sorted (SortConns). Empty (not nil) when there are none.
	Conns []Conn `json:"conns"`
}

// Conn is one TCP socket: its local and remote address and port, every byte the
// application wrote to it (Sent: acknowledged or still queued; the kernel also counts
// an acknowledged SYN or FIN as one) and every byte that arrived on it (Received: read
// or not), since it opened.
type Conn struct {
	Local    string `json:"local"`
	Remote   string `json:"remote"`
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
}

// SortConns sorts cs by local, then remote address.
func SortConns(cs []Conn) {
	slices.SortFunc(cs, func(a, b Conn) int {
		return cmp.Or(cmp.Compare(a.Local, b.Local), cmp.Compare(a.Remote, b.Remote))
	})
}

// Equal reports whether c and o are the same counters (the same connections, each
// with the same bytes).
func (c Counters) Equal(o Counters) bool {
	return c.RxBytes == o.RxBytes && c.RxPackets == o.RxPackets && c.TxBytes == o.TxBytes &&
		c.TxPackets == o.TxPackets && c.CPUNanos == o.CPUNanos && slices.Equal(c.Conns, o.Conns)
}

// Reader reads counters from a /proc and a cgroup file system.
type Reader struct {
	// Proc and Cgroup are the mount points; empty means /proc and /sys/fs/cgroup.
	Proc, Cgroup string
}

// Read returns the counters of the container whose init process is pid: the network
// namespace and the cgroup of that process.
func (r Reader) Read(pid int) (Counters, error) {
	if pid <= 0 {
		return Counters{}, fmt.Errorf("activity: no pid (%d): is the container running?", pid)
	}
	proc := or(r.Proc, "/proc")
	f, err := os.Open(filepath.Join(proc, strconv.Itoa(pid), "net", "dev"))
	if err != nil {
		return Counters{}, fmt.Errorf("activity: %w", err)
	}
	defer f.Close()
	c, err := ParseNetDev(f)
	if err != nil {
		return Counters{}, err
	}
	cg, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return Counters{}, fmt.Errorf("activity: %w", err)
	}
	c.CPUNanos, err = cpuTime(or(r.Cgroup, "/sys/fs/cgroup"), string(cg))
	if err != nil {
		return Counters{}, err
	}
	if c.Conns, err = Sockets(filepath.Join(proc, strconv.Itoa(pid), "ns", "net")); err != nil {
		return Counters{}, err
	}
	if c.Conns == nil {
		c.Conns = []Conn{}
	}
	return c, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cpuTime reads the CPU time (ns) of the cgroup a /proc/PID/cgroup table names: the
// cpuacct controller's (v1), else the unified hierarchy's (v2).
func cpuTime(root, table string) (uint64, error) {
	var unified string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl != "cpuacct" {
				continue
			}
			for _, mnt := range []string{parts[1], "cpuacct", "cpu,cpuacct"} {
				b, err := os.ReadFile(filepath.Join(root, mnt, parts[2], "cpuacct.usage"))
				if err == nil {
					n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
					if err != nil {
						return 0, fmt.Errorf("%w: cpuacct.usage: %v", ErrFormat, err)
					}
					return n, nil
				}
			}
		}
	}
	if unified != "" {
		for _, base := range []string{root, filepath.Join(root, "unified")} {
			b, err := os.ReadFile(filepath.Join(base, unified, "cpu.stat"))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
					n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					if err != nil {
						return 0, fmt.Errorf("%w: cpu.stat: %v", ErrFormat, err)
					}
					return n * 1000, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("activity: no CPU accounting found under %s for cgroups %q: %w", root, strings.TrimSpace(table), ErrNoCPU)
}

// ParseNetDev sums a /proc/net/dev table over every interface but lo.
func ParseNetDev(r io.Reader) (Counters, error) {
	var c Counters
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		if line <= 2 {
			continue // the two header lines
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return Counters{}, fmt.Errorf("%w: line %d has no interface name: %q", ErrFormat, line, sc.Text())
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return Counters{}, fmt.Errorf("%w: line %d has %d fields, want 16: %q", ErrFormat, line, len(f), sc.Text())
		}
		if strings.TrimSpace(name) == "lo" {
			continue // traffic inside the container: not a connection to a peer
		}
		var v [4]uint64
		for i, k := range []int{0, 1, 8, 9} {
			n, err := strconv.ParseUint(f[k], 10, 64)
			if err != nil {
				return Counters{}, fmt.Errorf("%w: line %d field %d: %v", ErrFormat, line, k+1, err)
			}
			v[i] = n
		}
		c.RxBytes += v[0]
		c.RxPackets += v[1]
		c.TxBytes += v[2]
		c.TxPackets += v[3]
	}
	if err := sc.Err(); err != nil {
		return Counters{}, fmt.Errorf("activity: %w", err)
	}
	if line < 2 {
		return Counters{}, fmt.Errorf("%w: no header", ErrFormat)
	}
	return c, nil
}

package netcount

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrFormat is returned for a net/dev table this package cannot read.
var ErrFormat = errors.New("netcount: unexpected /proc net/dev format")

// Counters are the bytes and packets every interface but loopback received and sent.
type Counters struct {
	RxBytes, RxPackets, TxBytes, TxPackets uint64
}

// Read returns the counters of the network namespace of process pid.
func Read(pid int) (Counters, error) {
	if pid <= 0 {
		return Counters{}, fmt.Errorf("netcount: no pid (%d): is the container running?", pid)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return Counters{}, fmt.Errorf("netcount: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse sums a /proc/net/dev table over every interface but lo.
func Parse(r io.Reader) (Counters, error) {
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
		return Counters{}, fmt.Errorf("netcount: %w", err)
	}
	if line < 2 {
		return Counters{}, fmt.Errorf("%w: no header", ErrFormat)
	}
	return c, nil
}

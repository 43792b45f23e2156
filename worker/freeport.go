package worker

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// freePort resolves HOST:0 to HOST:<a free port> for a listener that another process
// (CRIU's lazy page server) opens a moment later. The port is picked in 10000-19999,
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range): in that moment an ephemeral port can be
// taken by any outgoing connection or listener on port 0 of the host, a port below the
// range only by a program that asks for that very port. Where the range leaves no room
// below it, the kernel's own pick is used.
func freePort(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return hostport, nil
	}
	free := func(p int) bool {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	if p, ok := pickPort(ephemeralLow(), rand.IntN, free); ok {
		return net.JoinHostPort(host, strconv.Itoa(p)), nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Ports pickPort chooses from: [minPort, maxPort), cut at the ephemeral range. Above it
// are this project's lab daemons (20000+10*K) and the e2e tests' picks (22000-31999).
const (
	minPort = 10000
	maxPort = 20000
)

// pickPort picks a random port of [minPort, min(maxPort, low)) that free says is free,
// in at most 64 tries; ok is false when there is no such range or no free port.
func pickPort(low int, intN func(int) int, free func(int) bool) (port int, ok bool) {
	to := min(maxPort, low)
	if to-minPort < 100 {
		return 0, false
	}
	for range 64 {
		if p := minPort + intN(to-minPort); free(p) {
			return p, true
		}
	}
	return 0, false
}

// ephemeralLow is the first port of the kernel's ephemeral range (0 if unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

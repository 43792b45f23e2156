package algotest

import (
	"fmt"
	"slices"
	"sort"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// sockets is the driver's report of counters as a real worker makes it (ReportSockets):
// one counter per TCP socket, known by its addresses, not by the peer container, and
// the container's CPU time.
type sockets struct {
	on    bool
	extra map[chanKey]int   // connections opened by Connect (no bytes), by (from, to)
	cpu   map[string]uint64 // CPU time (ns) by container: Run adds to it
}

// ReportSockets makes the containers report their counters as a real worker does: one
// per connection with its local and remote address ("a:40100", "b:9000"; the container
// of the pair whose id sorts first is the client, its port 40000 + 100 x the server's
// index + the connection's) and the CPU time (protocol.CPUTime,
// moved only by Run). The recordings (and the cut check) keep the per-peer counters.
func (d *Driver) ReportSockets() {
	d.socks.on = true
	if d.socks.extra == nil {
		d.socks.extra, d.socks.cpu = map[chanKey]int{}, map[string]uint64{}
	}
}

// Connect opens one more connection between a and b (a peer of a) that carries no
// bytes: their connection sets change, none of their counters move.
func (d *Driver) Connect(a, b string) bool {
	if _, ok := d.chans[chanKey{a, b}]; !ok || !d.socks.on {
		return false
	}
	if b < a {
		a, b = b, a
	}
	d.socks.extra[chanKey{a, b}]++
	return true
}

// Run makes container a run for 1 ms of CPU time without any traffic.
func (d *Driver) Run(a string) bool {
	if _, ok := d.cs[a]; !ok || !d.socks.on || d.cs[a].frozen {
		return false
	}
	d.socks.cpu[a] += 1_000_000
	return true
}

// reported is what container c's worker reports: its per-peer counters, or, with
// ReportSockets, per socket.
func (d *Driver) reported(c *container) []protocol.ConnCounter {
	if !d.socks.on {
		return d.counters(c)
	}
	var out []protocol.ConnCounter
	for _, k := range d.counters(c) {
		lo, hi := c.id, k.Peer
		if hi < lo {
			lo, hi = hi, lo
		}
		for i := range 1 + d.socks.extra[chanKey{lo, hi}] {
			client, server := fmt.Sprintf("%s:%d", lo, 40000+100*slices.Index(d.order, hi)+i), hi+":9000"
			local, peer := client, server
			if c.id == hi {
				local, peer = server, client
			}
			s := protocol.ConnCounter{Peer: peer, Local: local}
			if i == 0 {
				s.Sent, s.Received = k.Sent, k.Received
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Local+" "+out[i].Peer < out[j].Local+" "+out[j].Peer })
	return append(out, protocol.ConnCounter{Peer: protocol.CPUTime, Sent: d.socks.cpu[c.id]})
}

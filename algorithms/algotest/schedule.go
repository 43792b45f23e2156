package algotest

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// Topology builds n containers on nodes of size perNode, connected as a ring plus a
// chord every third container (so cuts have both short and long channels).
func Topology(n, perNode int) []protocol.Container {
	if perNode < 1 {
		perNode = 1
	}
	peers := make([]map[int]bool, n)
	for i := range peers {
		peers[i] = map[int]bool{}
	}
	link := func(a, b int) {
		if a != b {
			peers[a][b], peers[b][a] = true, true
		}
	}
	for i := 0; i < n && n > 1; i++ {
		link(i, (i+1)%n)
		if i%3 == 0 {
			link(i, (i+n/2)%n)
		}
	}
	out := make([]protocol.Container, n)
	for i := range out {
		out[i] = protocol.Container{ID: fmt.Sprintf("c%d", i), Node: fmt.Sprintf("n%d", i/perNode)}
		for j := 0; j < n; j++ {
			if peers[i][j] {
				out[i].Peers = append(out[i].Peers, fmt.Sprintf("c%d", j))
			}
		}
	}
	return out
}

// RandomSchedule runs steps random events: deliveries in seeded order, application
// traffic, ticks, and snapshot requests (s1, s2, ...; a request while one is active must
// be refused). It returns the number of requests made.
func (d *Driver) RandomSchedule(steps int) (requests int, err error) {
	for range steps {
		switch r := d.rng.IntN(20); {
		case r < 9:
			if !d.DeliverOne(false) {
				d.Tick()
			}
		case r < 14:
			d.RandomTraffic()
		case r < 18:
			d.Tick()
		default:
			requests++
			if e := d.Request(fmt.Sprintf("s%d", requests)); e != nil && !isBusy(e) {
				return requests, fmt.Errorf("request s%d: %w", requests, e)
			}
		}
	}
	return requests, nil
}

package agent

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/worker/activity"
)

// The agent reports one counter per TCP socket (Local set, the remote end as Peer) and
// the CPU time; the interfaces' bytes, which any packet moves, are not reported.
func TestCountersPerSocketAndCPUTime(t *testing.T) {
	c := activity.Counters{RxBytes: 9, TxBytes: 9, CPUNanos: 42, Conns: []activity.Conn{
		{Local: "10.0.0.2:40000", Remote: "10.0.0.3:9000", Sent: 10, Received: 20},
		{Local: "10.0.0.2:9000", Remote: "10.0.0.4:41000", Sent: 1, Received: 2},
	}}
	got := counters(c)
	want := []protocol.ConnCounter{
		{Peer: "10.0.0.3:9000", Local: "10.0.0.2:40000", Sent: 10, Received: 20},
		{Peer: "10.0.0.4:41000", Local: "10.0.0.2:9000", Sent: 1, Received: 2},
		{Peer: protocol.CPUTime, Sent: 42},
	}
	if len(got) != len(want) {
		t.Fatalf("counters = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counters[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Only the interfaces' bytes moved (ARP, a broadcast): the same report.
	c2 := c
	c2.RxBytes, c2.TxBytes = 1000, 2000
	for i, k := range counters(c2) {
		if k != want[i] {
			t.Fatalf("with other interface bytes: counters[%d] = %+v, want %+v", i, k, want[i])
		}
	}
	// No connection: the CPU time alone.
	if got := counters(activity.Counters{CPUNanos: 7, Conns: []activity.Conn{}}); len(got) != 1 || got[0] != (protocol.ConnCounter{Peer: protocol.CPUTime, Sent: 7}) {
		t.Fatalf("no connection: %+v, want the CPU time alone", got)
	}
}

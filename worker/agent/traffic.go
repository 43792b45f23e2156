package agent

import (
	"context"
	"sync"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// trafficReadings keeps, per container, the traffic counters read when a snapshot
// locked all of its connections, until that snapshot's fresh dump reports them as the
// counters of its images (DumpStats.Conns): the minimal algorithm's base.
type trafficReadings struct {
	mu sync.Mutex
	m  map[string]reading // by container id
}

type reading struct {
	snapshot string
	conns    []protocol.ConnCounter
}

// lockTraffic reads container t's counters once all its connections are locked
// (snapshot's lock), as one aggregate counter (protocol.AllPeers); nil if the worker
// cannot count (it is no TrafficCounter, or the read failed: the container then just
// counts as changed).
func (a *Agent) lockTraffic(ctx context.Context, snapshot string, t node.Target) []protocol.ConnCounter {
	tc, ok := a.cfg.Worker.Holder.(worker.TrafficCounter)
	if !ok {
		return nil
	}
	c, err := tc.Traffic(ctx, t.ID)
	if err != nil {
		a.log.Debug("no traffic counters: the container dumps afresh under minimal", "container", t.ID, "err", err)
		return nil
	}
	conns := []protocol.ConnCounter{{Peer: protocol.AllPeers, Sent: c.TxBytes, Received: c.RxBytes}}
	a.traffic.mu.Lock()
	defer a.traffic.mu.Unlock()
	if a.traffic.m == nil {
		a.traffic.m = map[string]reading{}
	}
	a.traffic.m[t.ID] = reading{snapshot: snapshot, conns: conns}
	return conns
}

// dumpedTraffic returns (and forgets) the counters read at container id's lock in
// snapshot: the traffic its fresh images of snapshot recorded, since every connection
// stayed locked from the reading to the dump. nil if there is none.
func (a *Agent) dumpedTraffic(snapshot, id string) []protocol.ConnCounter {
	a.traffic.mu.Lock()
	defer a.traffic.mu.Unlock()
	r, ok := a.traffic.m[id]
	if !ok || r.snapshot != snapshot {
		return nil
	}
	delete(a.traffic.m, id)
	return r.conns
}

package agent

import (
	"context"
	"sync"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/activity"
)

// lockedAll remembers, per container, the snapshot that locked every one of its
// connections and read its counters: its fresh dump in that snapshot reports the
// counters read right after the dump, while still locked (the images' base for the
// minimal algorithm).
type lockedAll struct {
	mu sync.Mutex
	m  map[string]string // container id -> snapshot
}

// counters converts a worker's reading to the protocol's ConnCounters: one per TCP
// connection (Local, and the remote end as Peer) and the CPU time (protocol.CPUTime).
// The interfaces' byte counters are not reported: any packet (ARP, a neighbour's
// broadcast) moves them, while only a connection's bytes matter to the cut; traffic
// that is no TCP connection needs the container to run, which the CPU time shows.
func counters(c activity.Counters) []protocol.ConnCounter {
	out := make([]protocol.ConnCounter, 0, len(c.Conns)+1)
	for _, k := range c.Conns {
		out = append(out, protocol.ConnCounter{Peer: k.Remote, Local: k.Local, Sent: k.Sent, Received: k.Received})
	}
	return append(out, protocol.ConnCounter{Peer: protocol.CPUTime, Sent: c.CPUNanos})
}

// activityOf reads container t's counters; nil if the worker cannot (it is no
// ActivityCounter, or the read failed: under minimal the container then counts as
// changed and dumps afresh).
func (a *Agent) activityOf(ctx context.Context, t node.Target) []protocol.ConnCounter {
	ac, ok := a.cfg.Worker.Holder.(worker.ActivityCounter)
	if !ok {
		return nil
	}
	c, err := ac.Activity(ctx, t.ID)
	if err != nil {
		a.log.Debug("no activity counters: the container counts as changed", "container", t.ID, "err", err)
		return nil
	}
	return counters(c)
}

// lockActivity is the lock-done's counters of container t, whose every connection
// snapshot just locked.
func (a *Agent) lockActivity(ctx context.Context, snapshot string, t node.Target) []protocol.ConnCounter {
	conns := a.activityOf(ctx, t)
	if conns == nil {
		return nil
	}
	a.locked.mu.Lock()
	defer a.locked.mu.Unlock()
	if a.locked.m == nil {
		a.locked.m = map[string]string{}
	}
	a.locked.m[t.ID] = snapshot
	return conns
}

// dumpActivity is the counters of container t's fresh images of snapshot: read after
// the dump, before anything is released, so no byte moved and no instruction ran in
// the container between the images and the reading other than CRIU's own (the dump
// resumes the container; what it runs then is counted, and makes the container dirty
// at the next snapshot). nil unless snapshot locked every connection of t first.
func (a *Agent) dumpActivity(ctx context.Context, snapshot string, t node.Target) []protocol.ConnCounter {
	a.locked.mu.Lock()
	s, ok := a.locked.m[t.ID]
	if ok && s == snapshot {
		delete(a.locked.m, t.ID)
	}
	a.locked.mu.Unlock()
	if !ok || s != snapshot {
		return nil
	}
	return a.activityOf(ctx, t)
}

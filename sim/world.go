package sim

import (
	"math"
	"strconv"

	"github.com/swarmckpt/swarmckpt/cut"
)

// container is the simulated state of one container.
type container struct {
	id    string
	node  int32
	mem   float64 // bytes
	edges []int32 // incident connections

	frozen     bool // cgroup freezer (ActFreeze)
	dumpFrozen bool // frozen by CRIU for the duration of a dump without prior freeze
	stopped    bool // dumped without LeaveRunning: stays down until thawed
	downSince  Time
	downtime   Time // accumulated in the current round
	lockAll    bool // every connection locked at this end
	dumping    bool
	dumpBegan  Time // when the current dump command started

	recorded      bool   // recorded in the current round
	dumpedFresh   bool   // freshly dumped in the current round
	reusedFrom    string // images reused in the current round (minimal)
	committedSnap string // snapshot whose images are this container's latest committed ones
}

func (c *container) down() bool { return c.frozen || c.dumpFrozen || c.stopped }

// dir holds one direction of a connection: bytes written by the sender, received by
// the receiver, acknowledged back to the sender.
type dir struct {
	rate                  float64 // bytes per ms while the sender runs
	sent, recv, acked     float64
	recSent, recAcked     float64 // sender's recording (current round)
	recRecv               float64 // receiver's recording (current round)
	comSent, comAcked     float64 // sender's latest committed recording
	comRecv               float64
	curSentSet, curRecSet bool
}

// conn is one connection u<->v with two directions and a lock flag at each end.
type conn struct {
	u, v         int32
	d            [2]dir // d[0]: u->v, d[1]: v->u
	lockU, lockV bool
	last         Time
	held         Time // time spent locked (current round)
}

// host is one machine the nodes run on: its disk and CPUs are shared by the dumps of
// every node on it (Config.Hosts; by default every node is its own host).
type host struct {
	disk pool // bytes
	cpu  pool // CPU-microseconds; used only when Config.CPUsPerHost > 0
}

// node is one worker node.
type node struct {
	containers []int32
	host       int32
	workerUp   bool
	isolated   bool
	// The node's worker (Config.WorkerSlots): actions running on it, and the container
	// roles waiting for a slot, in arrival order (from head on).
	slotsBusy int
	waiting   []slotWait
	head      int
}

// slotWait is a container role waiting for its node's worker: proc and its generation.
type slotWait struct{ proc, gen int32 }

// world is the physical model: containers, connections, nodes, traffic.
type world struct {
	cfg   *Config
	cs    []container
	conns []conn
	nodes []node
	hosts []host
	now   Time
	// isolatedNodes counts the nodes cut off by a partition now (0: every path is
	// open to every node, the common case, checked first).
	isolatedNodes int
}

// setIsolated cuts node n off (or reconnects it).
func (w *world) setIsolated(n int32, on bool) {
	nd := &w.nodes[n]
	switch {
	case on && !nd.isolated:
		w.isolatedNodes++
	case !on && nd.isolated:
		w.isolatedNodes--
	}
	nd.isolated = on
}

func (w *world) pathOpen(e *conn) bool {
	if w.locked(e) {
		return false
	}
	return w.isolatedNodes == 0 || w.nodes[w.cs[e.u].node].isolated == w.nodes[w.cs[e.v].node].isolated
}

// locked reports whether no byte may cross e: a lock at either end, or (CRIULock) a
// dump in progress at either end, CRIU's own network lock for --tcp-established.
func (w *world) locked(e *conn) bool {
	if e.lockU || e.lockV || w.cs[e.u].lockAll || w.cs[e.v].lockAll {
		return true
	}
	return w.cfg.CRIULock && (w.cs[e.u].dumping || w.cs[e.v].dumping)
}

// advance brings connection e's counters to w.now under the conditions that held since
// its last update (callers update before changing any condition of e).
func (w *world) advance(ei int32) {
	e := &w.conns[ei]
	dt := w.now - e.last
	if dt <= 0 {
		return
	}
	e.last = w.now
	ms := float64(dt) / float64(Millisecond)
	open := w.pathOpen(e)
	if w.locked(e) {
		e.held += dt
	}
	for k := 0; k < 2; k++ {
		d := &e.d[k]
		sender := e.u
		if k == 1 {
			sender = e.v
		}
		active := !w.cs[sender].down() && d.rate > 0
		if active {
			cap := d.acked + w.cfg.SendBufferBytes
			if open {
				cap = math.Inf(1)
			}
			if d.sent < cap {
				d.sent = math.Min(d.sent+d.rate*ms, cap)
			}
		}
		if open {
			inflight := 0.0
			if active {
				inflight = d.rate * w.cfg.DataDelayMs
			}
			if r := d.sent - inflight; r > d.recv {
				d.recv = r
			}
			if d.recv < d.sent && !active {
				d.recv = d.sent // drained: the sender stopped writing
			}
			if a := d.recv - inflight; a > d.acked {
				d.acked = a
			}
			if !active {
				d.acked = d.recv
			}
		}
	}
}

// touch advances every connection of container c.
func (w *world) touch(c int32) {
	for _, ei := range w.cs[c].edges {
		w.advance(ei)
	}
}

func (w *world) setDown(c int32, f func(*container)) {
	ct := &w.cs[c]
	was := ct.down()
	w.touch(c)
	f(ct)
	switch now := ct.down(); {
	case !was && now:
		ct.downSince = w.now
	case was && !now:
		ct.downtime += w.now - ct.downSince
	}
}

// peerOf returns the other end of e seen from c, and which direction c sends on.
func (w *world) peerOf(ei, c int32) (peer int32, out int) {
	e := &w.conns[ei]
	if e.u == c {
		return e.v, 0
	}
	return e.u, 1
}

// setLock sets the lock flag of c's end on the connections to peers (all if nil).
func (w *world) setLock(c int32, peers []int32, on bool) {
	w.touch(c)
	if peers == nil {
		w.cs[c].lockAll = on
		for _, ei := range w.cs[c].edges {
			e := &w.conns[ei]
			if e.u == c {
				e.lockU = on
			} else {
				e.lockV = on
			}
		}
		return
	}
	for _, ei := range w.cs[c].edges {
		p, _ := w.peerOf(ei, c)
		for _, q := range peers {
			if q == p {
				e := &w.conns[ei]
				if e.u == c {
					e.lockU = on
				} else {
					e.lockV = on
				}
			}
		}
	}
}

// held reports whether c is frozen or holds any lock.
func (w *world) held(c int32) bool {
	ct := &w.cs[c]
	if ct.down() || ct.lockAll {
		return true
	}
	for _, ei := range ct.edges {
		e := &w.conns[ei]
		if (e.u == c && e.lockU) || (e.v == c && e.lockV) {
			return true
		}
	}
	return false
}

// record takes container c's recording: what CRIU's images would hold (send queue up
// to what was written, receive queue up to what arrived, acknowledged offset).
func (w *world) record(c int32) {
	w.touch(c)
	for _, ei := range w.cs[c].edges {
		e := &w.conns[ei]
		_, out := w.peerOf(ei, c)
		o, in := &e.d[out], &e.d[1-out]
		o.recSent, o.recAcked, o.curSentSet = o.sent, o.acked, true
		in.recRecv, in.curRecSet = in.recv, true
	}
	w.cs[c].recorded = true
}

// reuse makes c's current recording its latest committed one.
func (w *world) reuse(c int32) {
	for _, ei := range w.cs[c].edges {
		e := &w.conns[ei]
		_, out := w.peerOf(ei, c)
		o, in := &e.d[out], &e.d[1-out]
		o.recSent, o.recAcked, o.curSentSet = o.comSent, o.comAcked, true
		in.recRecv, in.curRecSet = in.comRecv, true
	}
	w.cs[c].recorded = true
}

// commit makes the current recordings of recorded containers the committed ones.
func (w *world) commit(snap string) {
	for ci := range w.cs {
		c := int32(ci)
		if !w.cs[c].recorded {
			continue
		}
		w.cs[c].committedSnap = snap
		if w.cs[c].reusedFrom != "" {
			w.cs[c].committedSnap = w.cs[c].reusedFrom // the images are still the old ones
		}
		for _, ei := range w.cs[c].edges {
			e := &w.conns[ei]
			_, out := w.peerOf(ei, c)
			o, in := &e.d[out], &e.d[1-out]
			o.comSent, o.comAcked = o.recSent, o.recAcked
			in.comRecv = in.recRecv
		}
	}
}

// counters returns c's live per-peer counters (what tcp_info would say now).
func (w *world) counters(c int32, fn func(peer int32, sent, recv uint64)) {
	w.touch(c)
	for _, ei := range w.cs[c].edges {
		e := &w.conns[ei]
		p, out := w.peerOf(ei, c)
		fn(p, uint64(e.d[out].sent), uint64(e.d[1-out].recv))
	}
}

// cutState builds the checker's input from the current round's recordings.
func (w *world) cutState() cut.State {
	st := cut.State{Containers: make(map[string]*cut.Container, len(w.cs))}
	// The end names of connection e, "<container>#<e>" for u and v, built once: one
	// end's local name is the other's remote one.
	names := make([][2]string, len(w.conns))
	endName := func(ei int32, k int) string {
		if names[ei][0] == "" {
			e := &w.conns[ei]
			name := strconv.Itoa(int(ei))
			names[ei] = [2]string{w.cs[e.u].id + "#" + name, w.cs[e.v].id + "#" + name}
		}
		return names[ei][k]
	}
	for ci := range w.cs {
		ct := &w.cs[ci]
		if !ct.recorded {
			continue
		}
		cc := &cut.Container{Conns: make([]cut.Conn, 0, len(ct.edges))}
		for _, ei := range ct.edges {
			e := &w.conns[ei]
			p, out := w.peerOf(ei, int32(ci))
			local, remote := endName(ei, out), endName(ei, 1-out)
			o, in := &e.d[out], &e.d[1-out]
			cc.Conns = append(cc.Conns, cut.Conn{Local: local, Remote: remote, Peer: w.cs[p].id,
				Sent: uint64(o.recSent), Acked: uint64(o.recAcked), Received: uint64(in.recRecv)})
		}
		st.Containers[ct.id] = cc
	}
	return st
}

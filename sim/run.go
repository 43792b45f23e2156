package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// proc runs one algorithm role (a container role, or the coordinator) the way a worker
// or the coordinator process would: Step/Tick, then execute Ready in its documented
// order (actions one after the other, each completed before the next; then messages),
// then Advance.
type proc struct {
	m     algorithms.Machine
	alive bool
	gen   int32 // bumped on crash: events of the dead incarnation are ignored
	busy  bool
	rd    algorithms.Ready
	// sendFree is when the proc's transport can take its next message (SendCostMs each).
	sendFree Time
	// record is the last record the role persisted (survives a crash of the process).
	record []byte
	next   int
	// Lazy ticking of container roles that implement algorithms.TickSkipper (skip is
	// then set): ticked is the tick the machine's countdowns have been brought to, due
	// the tick its timer fires on (0: none).
	skip        algorithms.TickSkipper
	ticked, due uint64
	// slot: the proc holds a slot of its node's worker for its current action
	// (Config.WorkerSlots, worker.go); waited: it waited for that slot since waitAt.
	slot, waited bool
	waitAt       Time
}

type msgSlot struct {
	env  protocol.Envelope
	to   int32
	gen  int32
	used bool
}

// runner is one simulated run.
type runner struct {
	cfg   Config
	alg   algorithms.Algorithm
	rng   *rand.Rand
	w     world
	q     queue
	procs []proc // containers 0..N-1, coordinator at N
	coord int32
	req   []protocol.Container

	slots     []msgSlot
	freeSlots []int32
	inflight  int

	faults []fault

	round     int
	snap      string
	roundAt   Time
	decidedAt Time
	decisions []decision
	cur       roundStats
	reports   []Report
	stepErrs  int
	// recoverErrs are RecoverCoordinator failures (each is an invariant violation).
	recoverErrs []string
	endRound    Time
	inRound     bool
	lastReq     Time
	done        bool

	// Ticks: tickN counts them. With lazy (every container role implements
	// algorithms.TickSkipper) a container role is ticked only on the tick its timer
	// fires (dueAt: tick -> roles, possibly stale) and its countdown is brought up to
	// date (SkipTicks) before each Step; with a million mostly idle roles this replaces
	// a million Tick calls per tick. The outcome is the same as ticking every role on
	// every tick (TestLazyTicksChangeNothing).
	tickN uint64
	lazy  bool
	dueAt map[uint64][]int32
}

type decision struct {
	snap      string
	committed bool
	reason    string
}

type roundStats struct {
	messages    int
	dropped     int
	dumped      int
	reused      int
	bytesDumped float64
	dumpMs      []float64 // per fresh dump: from the command to its end
}

func (r *runner) tick() Time   { return Time(r.cfg.TickMs * float64(Millisecond)) }
func ms(v float64) Time        { return Time(math.Round(v * float64(Millisecond))) }
func (r *runner) push(e event) { r.q.push(e) }

// Run simulates cfg with algorithm alg and returns the report of the last round.
func Run(cfg Config, alg algorithms.Algorithm) (*Report, error) {
	all, err := RunAll(cfg, alg)
	if err != nil {
		return nil, err
	}
	return &all[len(all)-1], nil
}

// RunAll simulates cfg with algorithm alg and returns one report per round.
func RunAll(cfg Config, alg algorithms.Algorithm) ([]Report, error) {
	return runAll(cfg, alg, true)
}

// runAll is RunAll; lazy false ticks every role on every tick (the reference).
func runAll(cfg Config, alg algorithms.Algorithm, lazy bool) ([]Report, error) {
	r, err := newRunner(cfg, alg, lazy)
	if err != nil {
		return nil, err
	}
	r.loop()
	return r.reports, nil
}

// newRunner validates cfg and builds the run's world and roles.
func newRunner(cfg Config, alg algorithms.Algorithm, lazy bool) (*runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if alg == nil {
		return nil, fmt.Errorf("%w: no algorithm", ErrConfig)
	}
	cfg = cfg.withFaultDefaults()
	r := &runner{cfg: cfg, alg: alg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed5eed)), lazy: lazy, dueAt: map[uint64][]int32{}}
	if err := r.build(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *runner) build() error {
	cfg := &r.cfg
	n := cfg.Containers
	hosts := cfg.Hosts
	if hosts == 0 || hosts > cfg.Nodes {
		hosts = cfg.Nodes
	}
	r.w = world{cfg: cfg, cs: make([]container, n), nodes: make([]node, cfg.Nodes), hosts: make([]host, hosts)}
	bw := cfg.DiskMBps * 1e6 / float64(Second) // bytes per microsecond
	for i := range r.w.hosts {
		r.w.hosts[i].disk = pool{capacity: bw, perJob: math.Inf(1)}
		r.w.hosts[i].cpu = pool{capacity: cfg.CPUsPerHost, perJob: 1}
	}
	for i := range r.w.nodes {
		r.w.nodes[i].host = int32(i % hosts)
		r.w.nodes[i].workerUp = true
	}
	lo, hi := math.Log(cfg.MemMinMiB), math.Log(cfg.MemMaxMiB)
	for i := 0; i < n; i++ {
		c := &r.w.cs[i]
		c.id = "c" + strconv.Itoa(i)
		c.node = int32(i % cfg.Nodes)
		if cfg.MemMiB != nil {
			c.mem = cfg.MemMiB[i] * (1 << 20)
		} else {
			c.mem = math.Exp(lo+(hi-lo)*r.rng.Float64()) * (1 << 20)
		}
		r.w.nodes[c.node].containers = append(r.w.nodes[c.node].containers, int32(i))
	}
	es, err := buildGraph(cfg.Graph, n, cfg, r.rng)
	if err != nil {
		return err
	}
	r.w.conns = make([]conn, len(es))
	deg := make([]int32, n)
	for _, e := range es {
		deg[e.u]++
		deg[e.v]++
	}
	for i := range r.w.cs {
		r.w.cs[i].edges = make([]int32, 0, deg[i])
	}
	for i, e := range es {
		r.w.conns[i] = conn{u: e.u, v: e.v}
		r.w.conns[i].d[0].rate = e.rateUV
		r.w.conns[i].d[1].rate = e.rateVU
		r.w.cs[e.u].edges = append(r.w.cs[e.u].edges, int32(i))
		r.w.cs[e.v].edges = append(r.w.cs[e.v].edges, int32(i))
	}
	r.req = make([]protocol.Container, n)
	for i := range r.w.cs {
		c := &r.w.cs[i]
		var peers []string
		if cfg.AllPeers {
			peers = make([]string, 0, n-1)
			for j := range r.w.cs {
				if j != i {
					peers = append(peers, r.w.cs[j].id)
				}
			}
		} else {
			peers = make([]string, 0, len(c.edges))
			for _, ei := range c.edges {
				p, _ := r.w.peerOf(ei, int32(i))
				peers = append(peers, r.w.cs[p].id)
			}
		}
		r.req[i] = protocol.Container{ID: c.id, Node: "node" + strconv.Itoa(int(c.node)), Peers: peers}
	}
	r.procs = make([]proc, n+1)
	for i := 0; i < n; i++ {
		r.procs[i] = proc{m: r.alg.NewContainer(algorithms.ContainerConfig{ID: r.w.cs[i].id}), alive: true}
		if _, ok := r.procs[i].m.(algorithms.TickSkipper); !ok {
			r.lazy = false
		}
	}
	for i := 0; i < n && r.lazy; i++ {
		r.procs[i].skip = r.procs[i].m.(algorithms.TickSkipper)
		r.arm(int32(i))
	}
	r.coord = int32(n)
	r.procs[n] = proc{m: r.alg.NewCoordinator(r.algConfig()), alive: true}
	return nil
}

func (r *runner) algConfig() algorithms.Config {
	return algorithms.Config{Timeout: r.cfg.TimeoutTicks, WatchdogGrace: r.cfg.WatchdogGraceTicks}
}

// loop runs events until the last round ends.
func (r *runner) loop() {
	r.startRound()
	r.push(event{at: r.w.now + r.tick(), kind: evTick})
	for r.q.len() > 0 && !r.done {
		e := r.q.pop()
		r.w.now = e.at
		switch e.kind {
		case evDeliver:
			r.deliver(int32(e.c))
		case evDone:
			r.actionDone(e.a, e.b)
		case evDumpSeize:
			r.dumpSeize(e.a, e.b)
		case evSlot:
			r.onSlot(e.a, e.b)
		case evDumpIO:
			r.dumpIO(e.a, e.b)
		case evDiskCheck:
			r.poolCheck(e.a, e.b == 1, e.c)
		case evTick:
			r.onTick()
			if !r.done {
				r.push(event{at: r.w.now + r.tick(), kind: evTick})
			}
		case evFault:
			r.onFault(int(e.a), e.b == 1)
		case evRound:
			r.startRound()
		}
	}
}

func (r *runner) startRound() {
	r.round++
	r.inRound = true
	r.snap = "snap-" + strconv.Itoa(r.round)
	r.roundAt = r.w.now
	r.decidedAt = -1
	r.cur = roundStats{}
	for i := range r.w.conns {
		r.w.advance(int32(i))
		r.w.conns[i].held = 0
		for k := 0; k < 2; k++ {
			r.w.conns[i].d[k].curSentSet, r.w.conns[i].d[k].curRecSet = false, false
		}
	}
	for i := range r.w.cs {
		c := &r.w.cs[i]
		c.downtime, c.recorded, c.dumpedFresh, c.reusedFrom = 0, false, false, ""
		if c.down() {
			c.downSince = r.w.now
		}
	}
	r.endRound = r.w.now + Time(r.cfg.TimeoutTicks+r.cfg.WatchdogGraceTicks)*r.tick() + 60*Second
	if r.round == r.cfg.Rounds && r.cfg.Faults.Any() {
		r.scheduleFaults()
	}
	r.request()
}

// request hands the round's snapshot request to the coordinator, as the CLI does. The
// client repeats it every ClientRetryMs until the snapshot is decided (a coordinator
// that crashed before persisting it has forgotten it; a duplicate is ignored).
func (r *runner) request() {
	r.lastReq = r.w.now
	env := protocol.Envelope{Version: protocol.Version, Type: protocol.TypeSnapshotRequest,
		Snapshot: r.snap, From: protocol.ClientAddr("sim"), To: protocol.Coordinator,
		Body: &protocol.SnapshotRequest{Algorithm: r.alg.Name(), Containers: r.req}}
	p := &r.procs[r.coord]
	if p.alive {
		if err := p.m.Step(env); err != nil {
			r.stepErrs++
		}
		r.kick(r.coord)
	}
}

// nodeOf returns the node of proc i (-1 for the coordinator, which runs apart).
func (r *runner) nodeOf(i int32) int32 {
	if i == r.coord {
		return -1
	}
	return r.w.cs[i].node
}

func (r *runner) isolated(n int32) bool {
	return r.w.isolatedNodes > 0 && n >= 0 && r.w.nodes[n].isolated
}

// route returns the proc a message is for, or -1.
func (r *runner) route(a protocol.Addr) int32 {
	switch a.Kind {
	case protocol.KindCoordinator:
		return r.coord
	case protocol.KindContainer:
		if i, ok := r.index(a.ID); ok {
			return i
		}
	}
	return -1
}

func (r *runner) send(from int32, env protocol.Envelope) {
	to := r.route(env.To)
	if env.To.Kind == protocol.KindClient {
		return // the snapshot result for the CLI: the outcome is taken from ActCommit/ActAbort
	}
	r.cur.messages++
	if to < 0 {
		r.cur.dropped++
		return
	}
	fn, tn := r.nodeOf(from), r.nodeOf(to)
	if r.isolated(fn) != r.isolated(tn) || (r.cfg.Faults.Loss > 0 && r.rng.Float64() < r.cfg.Faults.Loss) {
		r.cur.dropped++
		return
	}
	// The sender hands messages to the transport one after the other.
	start := max(r.w.now, r.procs[from].sendFree) + ms(r.cfg.SendCostMs)
	r.procs[from].sendFree = start
	copies := 1
	if r.cfg.Faults.Dup > 0 && r.rng.Float64() < r.cfg.Faults.Dup {
		copies = 2
	}
	for k := 0; k < copies; k++ {
		d := r.cfg.NetDelayMs + r.cfg.NetJitterMs*r.rng.Float64()
		if fn == tn {
			d /= 10
		}
		slot := r.alloc(env, to)
		r.inflight++
		r.push(event{at: start + ms(d) + 1, kind: evDeliver, c: int64(slot)})
	}
}

func (r *runner) alloc(env protocol.Envelope, to int32) int32 {
	var s int32
	if n := len(r.freeSlots); n > 0 {
		s = r.freeSlots[n-1]
		r.freeSlots = r.freeSlots[:n-1]
	} else {
		r.slots = append(r.slots, msgSlot{})
		s = int32(len(r.slots) - 1)
	}
	r.slots[s] = msgSlot{env: env, to: to, gen: r.procs[to].gen, used: true}
	return s
}

func (r *runner) deliver(s int32) {
	m := r.slots[s]
	r.slots[s] = msgSlot{}
	r.freeSlots = append(r.freeSlots, s)
	r.inflight--
	p := &r.procs[m.to]
	if !p.alive || (r.w.isolatedNodes > 0 && r.isolated(r.nodeOf(r.route(m.env.From))) != r.isolated(r.nodeOf(m.to))) {
		r.cur.dropped++
		return
	}
	r.catchUp(m.to)
	if err := p.m.Step(m.env); err != nil {
		r.stepErrs++
	}
	r.arm(m.to)
	r.kick(m.to)
}

// catchUp brings container role i's countdowns to the current tick (lazy ticking):
// the ticks it missed did nothing else, as it was not due.
func (r *runner) catchUp(i int32) {
	p := &r.procs[i]
	if p.skip != nil && p.ticked < r.tickN {
		p.skip.SkipTicks(r.tickN - p.ticked)
		p.ticked = r.tickN
	}
}

// arm records the tick on which container role i's timer fires, after anything that
// may have started, restarted or stopped it (lazy ticking).
func (r *runner) arm(i int32) {
	p := &r.procs[i]
	if p.skip == nil {
		return
	}
	n := p.skip.TicksUntilDue()
	if n == 0 {
		p.due = 0
		return
	}
	if d := r.tickN + n; d != p.due {
		p.due = d
		r.dueAt[d] = append(r.dueAt[d], i)
	}
}

// kick starts executing the proc's next Ready if it is idle and has one.
func (r *runner) kick(i int32) {
	p := &r.procs[i]
	if !p.alive || p.busy || !p.m.HasReady() {
		return
	}
	p.rd = p.m.Ready()
	p.busy, p.next = true, 0
	r.execNext(i)
}

func (r *runner) execNext(i int32) {
	p := &r.procs[i]
	for p.next < len(p.rd.Actions) {
		a := &p.rd.Actions[p.next]
		if !r.acquire(i, a) {
			return // waits for its node's worker (worker.go)
		}
		if r.startAction(i, a) {
			return // completes later with evDone
		}
		r.release(i)
		p.next++
	}
	for _, m := range p.rd.Messages {
		r.send(i, m)
	}
	p.rd = algorithms.Ready{}
	p.busy = false
	p.m.Advance()
	r.kick(i)
}

// startAction begins action a of proc i and reports whether it completes later.
func (r *runner) startAction(i int32, a *algorithms.Action) bool {
	p := &r.procs[i]
	began := r.w.now // the agent times an action from its call, a wait for the worker included
	if p.waited {
		began, p.waited = p.waitAt, false
	}
	var d Time
	switch a.Kind {
	case algorithms.ActPersist, algorithms.ActAbort:
		d = ms(r.cfg.PersistMs)
	case algorithms.ActCommit:
		d = ms(r.commitMs())
	case algorithms.ActLock, algorithms.ActUnlock:
		if c := r.containerOf(a); c >= 0 && r.cfg.LockCPUMs > 0 && r.cfg.CPUsPerHost > 0 {
			r.addJob(r.w.nodes[r.w.cs[c].node].host, true, poolJob{container: i, remaining: r.cfg.LockCPUMs * float64(Millisecond), token: p.gen, lock: true})
			return true
		}
		d = ms(r.cfg.LockMs)
	case algorithms.ActFreeze, algorithms.ActThaw:
		d = ms(r.cfg.FreezeMs)
	case algorithms.ActDump:
		c := r.containerOf(a)
		if c < 0 {
			return false
		}
		if a.ReuseFrom != "" {
			d = ms(1)
			break
		}
		r.w.cs[c].dumpBegan = began
		if r.cfg.DumpStartMs > 0 && !r.w.cs[c].down() {
			r.push(event{at: r.w.now + ms(2*r.rng.Float64()*r.cfg.DumpStartMs), kind: evDumpSeize, a: i, b: p.gen})
			return true
		}
		r.dumpSeize(i, p.gen)
		return true
	default:
		return false
	}
	r.push(event{at: r.w.now + d, kind: evDone, a: i, b: p.gen})
	return true
}

// index returns the container whose id is id ("c" and its index, as build names them):
// parsed rather than looked up, so a million containers need no map.
func (r *runner) index(id string) (int32, bool) {
	if len(id) < 2 || id[0] != 'c' || id[1] < '0' || id[1] > '9' || (id[1] == '0' && len(id) > 2) {
		return -1, false
	}
	i, err := strconv.Atoi(id[1:])
	if err != nil || i < 0 || i >= len(r.w.cs) {
		return -1, false
	}
	return int32(i), true
}

// commitMs is the coordinator's time from deciding to commit to the commit record.
func (r *runner) commitMs() float64 {
	v := r.cfg.PersistMs + r.cfg.CommitCheckMs + r.cfg.CommitPerContainerMs*float64(r.cfg.Containers)
	if r.cfg.CommitReadMBps > 0 {
		v += r.cur.bytesDumped / (r.cfg.CommitReadMBps * 1e6) * 1000
	}
	return v
}

func (r *runner) containerOf(a *algorithms.Action) int32 {
	c, ok := r.index(a.Container)
	if !ok {
		return -1
	}
	return c
}

func (r *runner) peersOf(a *algorithms.Action) []int32 {
	if a.Peers == nil {
		return nil
	}
	out := make([]int32, 0, len(a.Peers))
	for _, id := range a.Peers {
		if c, ok := r.index(id); ok {
			out = append(out, c)
		}
	}
	return out
}

// dumpSeize is CRIU seizing container i: it stops running (if not frozen already), its
// connections are locked by CRIU (CRIULock) and its images record the state now; then
// the dump's fixed cost runs (on the host's CPUs when they are modelled).
func (r *runner) dumpSeize(i int32, gen int32) {
	p := &r.procs[i]
	if p.gen != gen || !p.alive {
		return
	}
	r.w.setDown(i, func(ct *container) {
		if !ct.down() {
			ct.dumpFrozen = true
		}
		ct.dumping = true
	})
	r.w.record(i)
	if r.cfg.CPUsPerHost > 0 {
		r.addJob(r.w.nodes[r.w.cs[i].node].host, true, poolJob{container: i, remaining: r.cfg.DumpOverheadMs * float64(Millisecond), token: gen})
		return
	}
	r.push(event{at: r.w.now + ms(r.cfg.DumpOverheadMs), kind: evDumpIO, a: i, b: gen})
}

// dumpIO starts writing container i's pages to its host's disk.
func (r *runner) dumpIO(i int32, gen int32) {
	p := &r.procs[i]
	if p.gen != gen || !p.alive {
		return
	}
	r.addJob(r.w.nodes[r.w.cs[i].node].host, false, poolJob{container: i, remaining: r.w.cs[i].mem, token: gen})
}

// hostPool is host h's CPU pool (cpu) or disk.
func (r *runner) hostPool(h int32, cpu bool) *pool {
	if cpu {
		return &r.w.hosts[h].cpu
	}
	return &r.w.hosts[h].disk
}

func (r *runner) addJob(h int32, cpu bool, j poolJob) {
	pl := r.hostPool(h, cpu)
	pl.progress(r.w.now)
	pl.jobs = append(pl.jobs, j)
	r.reschedulePool(h, cpu)
}

func (r *runner) reschedulePool(h int32, cpu bool) {
	pl := r.hostPool(h, cpu)
	pl.version++
	if at, ok := pl.next(r.w.now); ok {
		b := int32(0)
		if cpu {
			b = 1
		}
		r.push(event{at: at, kind: evDiskCheck, a: h, b: b, c: pl.version})
	}
}

// poolCheck finishes the jobs of host h's CPU pool or disk that are done: a finished
// CPU phase moves on to the disk, a finished disk phase completes the dump.
func (r *runner) poolCheck(h int32, cpu bool, version int64) {
	pl := r.hostPool(h, cpu)
	if pl.version != version {
		return
	}
	pl.progress(r.w.now)
	finished := pl.finished()
	r.reschedulePool(h, cpu)
	for _, j := range finished {
		if cpu && !j.lock {
			r.dumpIO(j.container, j.token)
		} else {
			r.actionDone(j.container, j.token)
		}
	}
}

// actionDone completes the current action of proc i: apply its effect, feed the
// result back (container actions), continue with the rest of the Ready.
func (r *runner) actionDone(i int32, gen int32) {
	p := &r.procs[i]
	if p.gen != gen || !p.alive || !p.busy || p.next >= len(p.rd.Actions) {
		return
	}
	a := p.rd.Actions[p.next]
	r.release(i)
	var stats *protocol.DumpStats
	var err error
	c := r.containerOf(&a)
	switch a.Kind {
	case algorithms.ActPersist:
		p.record = a.Record
	case algorithms.ActCommit, algorithms.ActAbort:
		p.record = a.Record
		r.decide(a)
	case algorithms.ActLock:
		r.w.setLock(c, r.peersOf(&a), true)
	case algorithms.ActUnlock:
		r.w.setLock(c, r.peersOf(&a), false)
	case algorithms.ActFreeze:
		r.w.setDown(c, func(ct *container) { ct.frozen = true })
	case algorithms.ActThaw:
		r.w.setDown(c, func(ct *container) { ct.frozen, ct.stopped = false, false })
	case algorithms.ActDump:
		stats = &protocol.DumpStats{}
		if a.ReuseFrom != "" {
			if r.w.cs[c].committedSnap != a.ReuseFrom {
				err = fmt.Errorf("sim: container %s has no images of snapshot %q (latest committed: %q)",
					a.Container, a.ReuseFrom, r.w.cs[c].committedSnap)
				break
			}
			r.w.reuse(c)
			r.w.cs[c].reusedFrom = a.ReuseFrom
			r.cur.reused++
			stats.ReusedFrom = a.ReuseFrom
		} else {
			r.w.setDown(c, func(ct *container) {
				ct.dumpFrozen, ct.dumping = false, false
				if !a.LeaveRunning && !ct.frozen {
					ct.stopped = true
				}
			})
			r.w.cs[c].dumpedFresh = true
			r.cur.dumpMs = append(r.cur.dumpMs, (r.w.now - r.w.cs[c].dumpBegan).Millis())
			r.cur.dumped++
			r.cur.bytesDumped += r.w.cs[c].mem
			stats.ImageBytes = uint64(r.w.cs[c].mem)
		}
		stats.Conns = r.recordedCounters(c)
	}
	if a.Kind == algorithms.ActCommit {
		// The commit is written (the simulated store never refuses): step its outcome
		// back, and the coordinator role sends the decision in its next Ready.
		if e := p.m.Step(algorithms.CommitDone(a, nil)); e != nil {
			r.stepErrs++
		}
	}
	if a.Kind.IsContainerAction() {
		var conns []protocol.ConnCounter
		if c >= 0 {
			conns = r.liveCounters(c)
		}
		r.catchUp(i)
		if e := p.m.Step(algorithms.Done(a, err, conns, stats)); e != nil {
			r.stepErrs++
		}
		r.arm(i)
	}
	p.next++
	r.execNext(i)
}

func (r *runner) liveCounters(c int32) []protocol.ConnCounter {
	out := make([]protocol.ConnCounter, 0, len(r.w.cs[c].edges))
	r.w.counters(c, func(peer int32, sent, recv uint64) {
		out = append(out, protocol.ConnCounter{Peer: r.w.cs[peer].id, Sent: sent, Received: recv})
	})
	return out
}

func (r *runner) recordedCounters(c int32) []protocol.ConnCounter {
	out := make([]protocol.ConnCounter, 0, len(r.w.cs[c].edges))
	for _, ei := range r.w.cs[c].edges {
		e := &r.w.conns[ei]
		p, o := r.w.peerOf(ei, c)
		out = append(out, protocol.ConnCounter{Peer: r.w.cs[p].id,
			Sent: uint64(e.d[o].recSent), Received: uint64(e.d[1-o].recRecv)})
	}
	return out
}

func (r *runner) decide(a algorithms.Action) {
	d := decision{snap: a.Snapshot, committed: a.Kind == algorithms.ActCommit, reason: a.Reason}
	r.decisions = append(r.decisions, d)
	if a.Snapshot == r.snap && r.decidedAt < 0 {
		r.decidedAt = r.w.now
	}
	if d.committed {
		r.w.commit(a.Snapshot)
	}
}

func (r *runner) onTick() {
	r.tickN++
	if p := &r.procs[r.coord]; p.alive {
		p.m.Tick()
		r.kick(r.coord)
	}
	if r.lazy {
		r.tickDue()
	} else {
		for i := int32(0); i < r.coord; i++ {
			if p := &r.procs[i]; p.alive {
				p.m.Tick()
				r.kick(i)
			}
		}
	}
	if r.inRound && r.decidedAt < 0 && r.w.now-r.lastReq >= ms(r.cfg.ClientRetryMs) {
		r.request()
	}
	if r.inRound && r.roundOver() {
		r.inRound = false
		r.finishRound()
	}
}

// tickDue ticks the container roles whose timer fires on this tick, in index order as
// the eager loop does (the others' Tick would only count down: catchUp does it later).
func (r *runner) tickDue() {
	ids := r.dueAt[r.tickN]
	if ids == nil {
		return
	}
	delete(r.dueAt, r.tickN)
	slices.Sort(ids)
	for k, i := range ids {
		p := &r.procs[i]
		if (k > 0 && ids[k-1] == i) || !p.alive || p.due != r.tickN {
			continue // a duplicate, or the timer was restarted or stopped since
		}
		p.skip.SkipTicks(r.tickN - 1 - p.ticked)
		p.ticked, p.due = r.tickN, 0
		p.m.Tick()
		r.arm(i)
		r.kick(i)
	}
}

// roundOver: the snapshot is decided, nothing is in flight or executing, every
// container is released and every fault has healed; or the round's time ran out.
func (r *runner) roundOver() bool {
	if r.w.now >= r.endRound {
		return true
	}
	if r.decidedAt < 0 || r.inflight > 0 || len(r.faults) > 0 {
		return false
	}
	for i := range r.procs {
		if r.procs[i].busy || !r.procs[i].alive {
			return false
		}
	}
	for i := range r.w.cs {
		if r.w.held(int32(i)) {
			return false
		}
	}
	return true
}

func (r *runner) finishRound() {
	r.reports = append(r.reports, r.report())
	if r.round >= r.cfg.Rounds {
		r.done = true
		return
	}
	r.push(event{at: r.w.now + ms(r.cfg.RoundGapMs), kind: evRound})
}

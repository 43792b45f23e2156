package sim

import (
	"github.com/swarmckpt/swarmckpt/algorithms"
)

type faultKind uint8

const (
	fWorkerCrash faultKind = iota + 1
	fPartition
	fCoordinatorCrash
)

type fault struct {
	kind  faultKind
	nodes []int32
	dur   Time
}

func (r *runner) scheduleFaults() {
	f := r.cfg.Faults
	at := func() Time { return r.w.now + ms(f.WindowMs*r.rng.Float64()) }
	perm := r.rng.Perm(r.cfg.Nodes)
	for k := 0; k < f.WorkerCrashes; k++ {
		r.addFault(fault{kind: fWorkerCrash, nodes: []int32{int32(perm[k])}, dur: ms(f.WorkerDownMs)}, at())
	}
	for k := 0; k < f.Partitions; k++ {
		var ns []int32
		for _, n := range r.rng.Perm(r.cfg.Nodes)[:min(f.PartitionNodes, r.cfg.Nodes)] {
			ns = append(ns, int32(n))
		}
		r.addFault(fault{kind: fPartition, nodes: ns, dur: ms(f.PartitionMs)}, at())
	}
	if f.CoordinatorCrash {
		r.addFault(fault{kind: fCoordinatorCrash, dur: ms(f.CoordinatorDownMs)}, at())
	}
}

func (r *runner) addFault(f fault, at Time) {
	r.faults = append(r.faults, f)
	r.push(event{at: at, kind: evFault, a: int32(len(r.faults) - 1)})
}

func (r *runner) onFault(k int, end bool) {
	f := r.faults[k]
	if !end {
		r.push(event{at: r.w.now + f.dur, kind: evFault, a: int32(k), b: 1})
	}
	switch f.kind {
	case fWorkerCrash:
		n := f.nodes[0]
		if !end {
			r.crashWorker(n)
		} else {
			r.w.nodes[n].workerUp = true
			for _, c := range r.w.nodes[n].containers {
				old := &r.procs[c]
				r.procs[c] = proc{m: r.alg.NewContainer(algorithms.ContainerConfig{ID: r.w.cs[c].id, Recovering: true, Record: old.record}),
					alive: true, gen: old.gen + 1, record: old.record, ticked: r.tickN}
				if r.lazy {
					r.procs[c].skip = r.procs[c].m.(algorithms.TickSkipper)
					r.arm(c)
				}
				r.kick(c)
			}
		}
	case fPartition:
		for _, n := range f.nodes {
			for _, c := range r.w.nodes[n].containers {
				r.w.touch(c)
			}
			r.w.setIsolated(n, !end)
		}
	case fCoordinatorCrash:
		p := &r.procs[r.coord]
		if !end {
			p.alive, p.busy, p.rd = false, false, algorithms.Ready{}
			p.gen++
		} else {
			m, err := r.alg.RecoverCoordinator(r.algConfig(), p.record)
			if err != nil {
				r.recoverErrs = append(r.recoverErrs, err.Error())
				m = r.alg.NewCoordinator(r.algConfig())
			}
			*p = proc{m: m, alive: true, gen: p.gen + 1, record: p.record}
			r.kick(r.coord)
		}
	}
	if end {
		r.healed(k)
	}
}

func (r *runner) healed(k int) {
	r.faults[k].kind = 0
	for _, f := range r.faults {
		if f.kind != 0 {
			return
		}
	}
	r.faults = nil
}

// crashWorker kills the worker agent of node n: its container roles and the actions
// they were executing are lost; a dump in progress is abandoned (CRIU unfreezes the
// container); cgroup freezes and network locks stay until the recovering roles release
// them.
func (r *runner) crashWorker(n int32) {
	r.w.nodes[n].workerUp = false
	r.resetWorker(n)
	h := r.w.nodes[n].host
	for _, cpu := range []bool{false, true} {
		pl := r.hostPool(h, cpu)
		pl.progress(r.w.now)
		pl.drop(func(c int32) bool { return r.w.cs[c].node == n })
		r.reschedulePool(h, cpu)
	}
	for _, c := range r.w.nodes[n].containers {
		p := &r.procs[c]
		p.alive, p.busy, p.rd = false, false, algorithms.Ready{}
		p.gen++
		if r.w.cs[c].dumping {
			r.w.setDown(c, func(ct *container) { ct.dumpFrozen, ct.dumping = false, false })
		}
	}
}

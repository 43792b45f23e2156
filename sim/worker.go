package sim

import "github.com/swarmckpt/swarmckpt/algorithms"

// A node's worker (Config.WorkerSlots): the container actions of the node's
// containers that the worker executes (lock, unlock, freeze, thaw, dump) run at most
// WorkerSlots at a time on it; a container role whose next action finds every slot
// taken waits, in arrival order, until one is released (its own actions still run one
// after the other, as the agent's per-container goroutine runs them). The time an
// action waits counts in it, as the agent's timing of the action does. WorkerSlots 0
// (the default) is no limit.

// onWorker reports whether an action of kind k runs on the node's worker (and so
// needs one of its slots); the container role's own record (ActPersist) is the
// agent's, not the worker's.
func onWorker(k algorithms.ActionKind) bool {
	switch k {
	case algorithms.ActLock, algorithms.ActUnlock, algorithms.ActFreeze, algorithms.ActThaw, algorithms.ActDump:
		return true
	}
	return false
}

// acquire reports whether proc i may start action a now: it holds a slot of its
// node's worker (taken now if one is free), or a needs none. Otherwise i waits in the
// node's queue and acquire returns false; execNext runs again once i got its slot.
func (r *runner) acquire(i int32, a *algorithms.Action) bool {
	p := &r.procs[i]
	if r.cfg.WorkerSlots <= 0 || i == r.coord || p.slot || !onWorker(a.Kind) {
		return true
	}
	nd := &r.w.nodes[r.w.cs[i].node]
	if nd.slotsBusy < r.cfg.WorkerSlots {
		nd.slotsBusy++
		p.slot = true
		return true
	}
	nd.waiting = append(nd.waiting, slotWait{proc: i, gen: p.gen})
	p.waited, p.waitAt = true, r.w.now
	return false
}

// release gives proc i's worker slot (if it holds one) to the first live role waiting
// on its node; that role's action starts at once (evSlot).
func (r *runner) release(i int32) {
	p := &r.procs[i]
	if !p.slot {
		return
	}
	p.slot = false
	nd := &r.w.nodes[r.w.cs[i].node]
	nd.slotsBusy--
	for nd.head < len(nd.waiting) {
		w := nd.waiting[nd.head]
		nd.head++
		if q := &r.procs[w.proc]; q.alive && q.gen == w.gen {
			nd.slotsBusy++
			q.slot = true
			r.push(event{at: r.w.now, kind: evSlot, a: w.proc, b: w.gen})
			break
		}
	}
	if nd.head == len(nd.waiting) {
		nd.waiting, nd.head = nd.waiting[:0], 0
	}
}

// onSlot starts the action proc i waited for (evSlot).
func (r *runner) onSlot(i, gen int32) {
	p := &r.procs[i]
	if p.gen != gen || !p.alive || !p.slot {
		return // crashed meanwhile: crashWorker reset the node's worker
	}
	r.execNext(i)
}

// resetWorker forgets node n's worker queue and slots (its agent crashed: the actions
// it ran and the roles waiting for it are gone).
func (r *runner) resetWorker(n int32) {
	nd := &r.w.nodes[n]
	nd.slotsBusy, nd.waiting, nd.head = 0, nd.waiting[:0], 0
	for _, c := range nd.containers {
		r.procs[c].slot, r.procs[c].waited = false, false
	}
}

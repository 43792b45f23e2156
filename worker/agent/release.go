package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// A container role releases a container once: its thaw and unlock actions are not
// repeated by the algorithm, whose snapshot may have ended by then (a failed release is
// stepped back into a machine that no longer waits for it). A release that fails for a
// reason other than the container being gone would then leave the container frozen or
// network-locked until its hold's deadline (the worker's watchdog), minutes later (fault
// seed 1500: one of Chandy-Lamport's per-peer unlocks failed because its nft process
// was killed, the snapshot committed, and the holder stayed locked to that peer).
//
// So the agent keeps every such failed release and repeats it on the container's own
// queue (after ReleaseRetry, doubling up to maxReleaseRetry) until it succeeds, finds the
// container gone, or the hold's deadline has passed (Hold after the failure: the
// watchdog has released it by then). A worker that is restarting answers nothing; the
// repetitions reach its successor. No new hold (lock, freeze) of the container is taken
// while an earlier release of it is pending: the pending releases run first, and if one
// still fails the new hold is refused, so a late repetition can never undo a newer
// snapshot's lock or freeze.

// releases holds the failed releases of the container roles, by container (shared by
// the container goroutines).
type releases struct {
	mu      sync.Mutex
	pending map[string][]prepared // failed releases, oldest first
	loops   map[string]bool       // a repetition is scheduled for the container
	gates   map[string]*sync.Mutex
}

// gate is the lock a container's pending releases run under, and a new hold of it is
// taken under.
func (r *releases) gate(id string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gates == nil {
		r.gates = map[string]*sync.Mutex{}
	}
	g, ok := r.gates[id]
	if !ok {
		g = &sync.Mutex{}
		r.gates[id] = g
	}
	return g
}

// add keeps p and reports whether a repetition must be scheduled (none is).
func (r *releases) add(p prepared) (schedule bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending, r.loops = map[string][]prepared{}, map[string]bool{}
	}
	id := p.act.Container
	r.pending[id] = append(r.pending[id], p)
	if r.loops[id] {
		return false
	}
	r.loops[id] = true
	return true
}

// take removes and returns the pending releases of id.
func (r *releases) take(id string) []prepared {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.pending[id]
	delete(r.pending, id)
	return ps
}

// keep puts back failed, the releases of id that failed again, before any added
// meanwhile, and returns how many are pending; with none, the repetition ends.
func (r *releases) keep(id string, failed []prepared) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(failed) > 0 {
		if r.pending == nil {
			r.pending, r.loops = map[string][]prepared{}, map[string]bool{}
		}
		r.pending[id] = append(failed, r.pending[id]...)
	}
	n := len(r.pending[id])
	if n == 0 {
		delete(r.pending, id)
		delete(r.loops, id)
	}
	return n
}

// drop forgets the pending releases of id (given up).
func (r *releases) drop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, id)
	delete(r.loops, id)
}

// ids are the containers with pending releases.
func (r *releases) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.pending))
	for id := range r.pending {
		out = append(out, id)
	}
	return out
}

// isRelease tells whether k releases a hold.
func isRelease(k algorithms.ActionKind) bool {
	return k == algorithms.ActUnlock || k == algorithms.ActThaw
}

// actionErr is the error of an action's Done message ("" when it succeeded).
func actionErr(res protocol.Envelope) string {
	if r, ok := res.Body.(*protocol.ActionResult); ok {
		return r.Error
	}
	return "no action result"
}

// releaseFailed keeps the release p, which just failed (execute logged why), and
// schedules its repetition on the container's queue q.
func (a *Agent) releaseFailed(ctx context.Context, q chan job, p prepared) {
	if !a.rel.add(p) {
		return // a repetition is scheduled already: it takes p too
	}
	until := time.Now().Add(a.cfg.Hold)
	a.log.Warn("release of a container failed: repeating it until it succeeds", "what", p.act.Kind, "container", p.t.ID,
		"snapshot", p.act.Snapshot, "in", a.cfg.ReleaseRetry, "until", until.Format(time.RFC3339))
	a.repeatRelease(ctx, q, p.act.Container, a.cfg.ReleaseRetry, until)
}

// repeatRelease runs the pending releases of container id on its queue q after wait,
// again (doubling wait, at most maxReleaseRetry) while one still fails, until until.
func (a *Agent) repeatRelease(ctx context.Context, q chan job, id string, wait time.Duration, until time.Time) {
	time.AfterFunc(wait, func() {
		retry := job{fn: func(ctx context.Context) {
			g := a.rel.gate(id)
			g.Lock()
			ran, left, err := a.runPending(ctx, id)
			g.Unlock()
			switch {
			case left == 0:
				if ran > 0 {
					a.log.Info("released a container on a later attempt", "container", id)
				}
			case time.Now().After(until):
				a.rel.drop(id)
				a.log.Error("release of a container still fails: giving up (the worker's watchdog releases it at its hold's deadline)",
					"container", id, "err", err)
			default:
				a.repeatRelease(ctx, q, id, min(2*wait, maxReleaseRetry), until)
			}
		}}
		select {
		case q <- retry:
		case <-ctx.Done():
		}
	})
}

// runPending runs the pending releases of container id, in order, and returns how many
// it ran, how many are still pending and the last failure. The caller holds id's gate.
func (a *Agent) runPending(ctx context.Context, id string) (ran, left int, last error) {
	var failed []prepared
	ps := a.rel.take(id)
	for _, p := range ps {
		if e := actionErr(a.execute(ctx, p)); e != "" {
			failed = append(failed, p)
			last = fmt.Errorf("%s of snapshot %s: %s", p.act.Kind, p.act.Snapshot, e)
		}
	}
	return len(ps), a.rel.keep(id, failed), last
}

// holding runs take, a new hold of container id, under id's gate once every pending
// release of id succeeded; while one still fails, the hold is refused.
func (a *Agent) holding(ctx context.Context, id string, take func() error) error {
	g := a.rel.gate(id)
	g.Lock()
	defer g.Unlock()
	if _, left, err := a.runPending(ctx, id); left > 0 {
		var kinds []string
		for _, p := range a.rel.pendingOf(id) {
			kinds = append(kinds, p.act.Kind.String())
		}
		return fmt.Errorf("container %s: an earlier release of it (%s) failed and still fails, so no new hold is taken before it succeeded (it is repeated every few seconds; the worker's watchdog releases it at its hold's deadline at the latest): %w",
			id, strings.Join(kinds, ", "), err)
	}
	return take()
}

// pendingOf returns the pending releases of id (a copy).
func (r *releases) pendingOf(id string) []prepared {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prepared(nil), r.pending[id]...)
}

// releasePending runs every pending release once (shutdown).
func (a *Agent) releasePending(ctx context.Context) {
	for _, id := range a.rel.ids() {
		g := a.rel.gate(id)
		g.Lock()
		if _, left, err := a.runPending(ctx, id); left > 0 {
			a.log.Warn("release of a container still fails on shutdown (the next agent releases it from its record, the worker's watchdog at its deadline)",
				"container", id, "err", err)
		}
		g.Unlock()
	}
}

package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/nodeloss"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
)

// Node-loss recovery (label swarmckpt.on-node-loss: restore; docs/policy.md "Node
// loss"). While it leads, the coordinator watches every node through three signals:
// its agent's heartbeats (liveness), its worker in the memberlist membership, and the
// swarm manager's node state. A node is lost only when all three say so
// (coordinator/nodeloss.Tracker). Then every stack labelled on-node-loss: restore that
// had a container on it is restored as a whole (rollback recovery: every container to
// the same cut) from its newest committed snapshot whose every set has a readable copy
// on a live node (nodeloss.Pick), in the stack's mode, through the ordinary restore
// path (which reads a copy when the original's node is down). Before the restore a
// fence is stored with the stack's policy record; once the node's agent is heard
// again, the stack's standalone containers still on it (an exact-mode restore's, from
// before the loss) are removed and the fence cleared. Swarm tasks on the returned node
// need no fence: their services were scaled to 0 (exact) or their tasks replaced
// (swarm), and swarm's reconciliation shuts them down.

// LossSwarm is what node-loss recovery asks of the swarm manager (stack.Docker,
// stack.FakeSwarm): the Stopper is used when it is one.
type LossSwarm interface {
	// NodeStates is every node's swarm state (ready, down, ...) by hostname.
	NodeStates(ctx context.Context) (map[string]string, error)
}

// LossEvent is what node-loss recovery decided or did (logged, and handed to the
// coordinator's event hook: lossWatcher.notify).
type LossEvent struct {
	// Kind: node-lost, stack-restored, restore-failed, no-snapshot, fenced.
	Kind     string `json:"kind"`
	Node     string `json:"node"`
	Stack    string `json:"stack,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Message  string `json:"message"`
}

// lossPeriod is how often the signals are read.
const lossPeriod = time.Second

// lossRestoreTimeout bounds one stack's restore after a node loss.
const lossRestoreTimeout = 5 * time.Minute

// lossWatcher runs node-loss recovery while its coordinator leads (started by the
// policy reconciler's run).
type lossWatcher struct {
	s   *Service
	r   *reconciler
	log *slog.Logger
	tr  *nodeloss.Tracker
	now func() time.Time
	// notify is the one hook for what happens: the coordinator's event stream
	// (swarmckpt events; tests replace it).
	notify func(context.Context, LossEvent)

	mu        sync.Mutex
	restoring map[string]bool // stacks whose loss restore runs
	fencing   map[string]bool // nodes being cleared
	wg        sync.WaitGroup
}

// lossGraceTimeouts is how many worker timeouts (Config.WorkerTimeout) after a
// leader's first observation a node it never saw up may be declared lost
// (nodeloss.Tracker.Grace): every live agent has sent several heartbeats by then.
const lossGraceTimeouts = 3

func newLossWatcher(r *reconciler) *lossWatcher {
	tr := nodeloss.NewTracker(0)
	tr.Grace = lossGraceTimeouts * r.s.cfg.WorkerTimeout
	return &lossWatcher{s: r.s, r: r, log: r.s.log.With("component", "nodeloss"), tr: tr, now: time.Now,
		notify: func(ctx context.Context, e LossEvent) { r.s.emit(ctx, e.event()) }, restoring: map[string]bool{}, fencing: map[string]bool{}}
}

// event is e on the coordinator's event stream (swarmckpt events).
func (e LossEvent) event() events.Event {
	kind := map[string]string{"node-lost": events.NodeLost, "stack-restored": events.RolledBack,
		"restore-failed": events.NodeLossFailed, "no-snapshot": events.NodeLossFailed, "fenced": events.Fenced}[e.Kind]
	if kind == "" {
		kind = e.Kind
	}
	return events.Event{Kind: kind, Node: e.Node, Stack: e.Stack, Snapshot: e.Snapshot, Reason: e.Message}
}

// emit logs e and hands it to the hook (the coordinator's event stream).
func (w *lossWatcher) emit(ctx context.Context, level slog.Level, e LossEvent) {
	w.log.Log(ctx, level, e.Message, "event", e.Kind, "node", e.Node, "stack", e.Stack, "snapshot", e.Snapshot)
	w.notify(ctx, e)
}

// run observes until ctx ends, then waits for the restores it started.
func (w *lossWatcher) run(ctx context.Context) {
	sw, ok := w.s.cfg.Stopper.(LossSwarm)
	if !ok {
		w.log.Info("node-loss recovery off: this coordinator has no swarm manager to ask for node states")
		return
	}
	defer w.wg.Wait()
	t := time.NewTicker(lossPeriod)
	defer t.Stop()
	for {
		w.step(ctx, sw)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// signals reads every node's signals: heartbeats, memberlist, swarm.
func (w *lossWatcher) signals(ctx context.Context, sw LossSwarm) map[string]nodeloss.Signals {
	out := map[string]nodeloss.Signals{}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	states, err := sw.NodeStates(cctx)
	cancel()
	if err != nil {
		w.log.Debug("cannot read the swarm's node states; no node counts as down meanwhile", "err", err)
	}
	for n, st := range states {
		out[n] = nodeloss.Signals{Swarm: st}
	}
	for _, wk := range w.s.live.live() {
		s := out[wk.Node]
		s.Heartbeat = true
		out[wk.Node] = s
	}
	if w.s.cfg.Members != nil {
		for _, m := range w.s.cfg.Members() {
			if m.Role == "worker" && m.Node != "" {
				s := out[m.Node]
				s.Member = true
				out[m.Node] = s
			}
		}
	}
	return out
}

// step is one observation of every node, and what follows from it.
func (w *lossWatcher) step(ctx context.Context, sw LossSwarm) {
	sig := w.signals(ctx, sw)
	now := w.now()
	nodes := make([]string, 0, len(sig))
	for n := range sig {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		switch w.tr.Observe(n, sig[n], now) {
		case nodeloss.BecameLost:
			lost := LossEvent{Kind: "node-lost", Node: n, Message: fmt.Sprintf(
				"node %s lost: no heartbeat from its agent, its worker gone from memberlist, and swarm reports it %s", n, sig[n].Swarm)}
			if !w.tr.SeenUp(n) {
				// Down since before this leader led: restoreStacks says it lost only
				// if a labelled stack is to be restored (a node long gone is not news).
				lost.Message += fmt.Sprintf(" (down since before this coordinator led: never seen up in the %s after it began to observe)", w.tr.Grace)
				w.wg.Add(1)
				go func() { defer w.wg.Done(); w.restoreStacks(ctx, n, now, &lost) }()
				continue
			}
			w.emit(ctx, slog.LevelWarn, lost)
			w.wg.Add(1)
			go func() { defer w.wg.Done(); w.restoreStacks(ctx, n, now, nil) }()
		case nodeloss.Returned:
			w.log.Info("lost node is back (its agent or worker answers); clearing its fences", "node", n)
		}
	}
	// Fences of nodes whose agent answers again (also those a previous leader
	// stored): clear them.
	for _, n := range w.fencedNodes() {
		if s := sig[n]; s.Heartbeat && w.tr.State(n) != nodeloss.Lost {
			w.mu.Lock()
			busy := w.fencing[n]
			w.fencing[n] = true
			w.mu.Unlock()
			if !busy {
				w.wg.Add(1)
				go func() {
					defer w.wg.Done()
					w.clearFences(ctx, n)
					w.mu.Lock()
					delete(w.fencing, n)
					w.mu.Unlock()
				}()
			}
		}
	}
}

// labelled returns the stacks whose policy says on-node-loss: restore, with it.
func (w *lossWatcher) labelled(ctx context.Context) map[string]policy.Policy {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.r.states == nil {
		if err := w.r.load(ctx); err != nil {
			w.log.Warn("cannot read the stacks' policy records: the lost node's stacks are not known", "err", err)
		}
	}
	out := map[string]policy.Policy{}
	for name, st := range w.r.states {
		if len(st.Policy) == 0 {
			continue
		}
		var p policy.Policy
		if json.Unmarshal(st.Policy, &p) == nil && p.Enabled && p.OnNodeLoss == policy.OnNodeLossRestore {
			out[name] = p
		}
	}
	return out
}

// fencedNodes lists the nodes with a stored fence whose stack's loss restore is not
// running.
func (w *lossWatcher) fencedNodes() []string {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, st := range w.r.states {
		if w.restoring[name] {
			continue
		}
		for _, f := range st.Fences {
			if !slices.Contains(out, f.Node) {
				out = append(out, f.Node)
			}
		}
	}
	sort.Strings(out)
	return out
}

// updateState changes stack's stored policy record with f (r.mu taken here).
func (w *lossWatcher) updateState(ctx context.Context, stackName string, f func(st *store.PolicyState)) error {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.r.states == nil {
		if err := w.r.load(ctx); err != nil {
			return fmt.Errorf("read the policy records: %w", err)
		}
	}
	cur := w.r.states[stackName]
	if cur == nil {
		return fmt.Errorf("stack %s has no policy record", stackName)
	}
	c := *cur
	c.Fences = slices.Clone(cur.Fences)
	f(&c)
	return w.r.put(ctx, &c)
}

// fenceAgainst returns stack's stored fence against node n, if any.
func (w *lossWatcher) fenceAgainst(stackName, n string) (store.Fence, bool) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if st := w.r.states[stackName]; st != nil {
		for _, f := range st.Fences {
			if f.Node == n {
				return f, true
			}
		}
	}
	return store.Fence{}, false
}

// restoreStacks restores every labelled stack that had a container on lost node n.
// unseen is the node-lost event of a node this leader never saw up (nil: it saw it
// go, and said so): a stack fenced against n was restored after this loss by an
// earlier leader already and is left alone, and the event is emitted only if some
// stack is to be restored.
func (w *lossWatcher) restoreStacks(ctx context.Context, n string, lostAt time.Time, unseen *LossEvent) {
	stacks := w.labelled(ctx)
	names := make([]string, 0, len(stacks))
	for name := range stacks {
		names = append(names, name)
	}
	sort.Strings(names)
	if unseen != nil {
		var todo []string
		for _, name := range names {
			if f, ok := w.fenceAgainst(name, n); ok {
				if len(f.Keep) == 0 {
					w.log.Warn("stack fenced against the lost node by an earlier leader whose restore may not have finished (no restored containers recorded): not restored again; check it with 'docker stack ps STACK' and, if it does not run, restore it by hand: swarmckpt restore --mode swarm --discard-running SNAPSHOT",
						"stack", name, "node", n, "snapshot", f.Snapshot, "fenced_at", f.At)
				} else {
					w.log.Info("stack already restored after the loss of this node by an earlier leader (its fence is stored): left as it is", "stack", name, "node", n, "snapshot", f.Snapshot, "fenced_at", f.At)
				}
				continue
			}
			if w.ranOn(ctx, stacks[name], n) {
				todo = append(todo, name)
			}
		}
		if len(todo) == 0 {
			w.log.Info("node down since before this coordinator led: no labelled stack to restore for it (none ran there, or an earlier leader restored them)", "node", n)
			return
		}
		w.emit(ctx, slog.LevelWarn, *unseen)
		names = todo
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		w.restoreStack(ctx, n, lostAt, stacks[name])
	}
}

// ranOn says whether stack p had a container on node n: in its newest committed
// snapshot, or running there now (nodeloss.Ran). A snapshot list that cannot be read
// counts as yes (restoreStack reports the error).
func (w *lossWatcher) ranOn(ctx context.Context, p policy.Policy, n string) bool {
	ms, err := w.s.cfg.Store.List(ctx, p.Stack)
	if err != nil {
		return true
	}
	return nodeloss.Ran(newestCommitted(ms), w.runningNodes(ctx, p.Stack), n)
}

// newestCommitted is the newest committed snapshot of ms (nil: none).
func newestCommitted(ms []*store.Manifest) *store.Manifest {
	var newest *store.Manifest
	for _, m := range ms {
		if m.State == store.StateCommitted && (newest == nil || m.CreatedAt.After(newest.CreatedAt)) {
			newest = m
		}
	}
	return newest
}

// runningNodes are the nodes of stack's running containers (none if it cannot be
// resolved).
func (w *lossWatcher) runningNodes(ctx context.Context, stackName string) []string {
	var running []string
	if st, err := w.s.cfg.Resolver.Resolve(ctx, stackName); err == nil {
		for _, c := range st.Containers {
			running = append(running, c.Node)
		}
	}
	return running
}

// restoreStack restores stack p after the loss of node n, if it ran there.
func (w *lossWatcher) restoreStack(ctx context.Context, n string, lostAt time.Time, p policy.Policy) {
	ms, err := w.s.cfg.Store.List(ctx, p.Stack)
	if err != nil {
		w.emit(ctx, slog.LevelError, LossEvent{Kind: "restore-failed", Node: n, Stack: p.Stack,
			Message: fmt.Sprintf("stack %s: cannot list its snapshots after the loss of node %s: %v; restore it by hand (swarmckpt ls %s, swarmckpt restore ID)", p.Stack, n, err, p.Stack)})
		return
	}
	if !nodeloss.Ran(newestCommitted(ms), w.runningNodes(ctx, p.Stack), n) {
		w.log.Info("stack labelled on-node-loss ran nothing on the lost node: left as it is", "stack", p.Stack, "node", n)
		return
	}
	live := map[string]bool{}
	for _, wk := range w.s.live.live() {
		if wk.Node != n {
			live[wk.Node] = true
		}
	}
	m, err := nodeloss.Pick(ms, live)
	if err != nil {
		w.emit(ctx, slog.LevelError, LossEvent{Kind: "no-snapshot", Node: n, Stack: p.Stack,
			Message: fmt.Sprintf("stack %s ran on lost node %s but cannot be restored: %v", p.Stack, n, err)})
		return
	}
	mode, why := nodeloss.Mode(p.Mode)
	if why != "" {
		w.log.Warn("stack restored in another mode than its own after a node loss", "stack", p.Stack, "node", n, "mode", mode, "why", why)
	}
	req := api.RestoreRequest{ID: m.ID, Mode: mode, DiscardRunning: true}
	w.mu.Lock()
	w.restoring[p.Stack] = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.restoring, p.Stack)
		w.mu.Unlock()
	}()
	// The fence first: a node that comes back must find it, whatever happens next.
	fence := store.Fence{Node: n, Snapshot: m.ID, At: lostAt.UTC()}
	if err := w.updateState(ctx, p.Stack, func(st *store.PolicyState) { st.Fences = append(st.Fences, fence) }); err != nil {
		w.emit(ctx, slog.LevelError, LossEvent{Kind: "restore-failed", Node: n, Stack: p.Stack, Snapshot: m.ID,
			Message: fmt.Sprintf("stack %s not restored after the loss of node %s: its fence could not be stored (%v), and without it the node could bring duplicates back; restore it by hand: swarmckpt restore %s", p.Stack, n, err, m.ID)})
		return
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, lossRestoreTimeout)
	res, err := w.s.Restore(rctx, req)
	// A scheduled snapshot that had the lost node in it holds the stack's lock
	// until the loss aborts it (its worker's heartbeats stopped): wait for it.
	for try := 0; errors.Is(err, api.ErrBusy) && try < 30 && rctx.Err() == nil; try++ {
		w.log.Info("stack busy (a snapshot of it is ending); retrying its restore", "stack", p.Stack, "err", err)
		select {
		case <-rctx.Done():
		case <-time.After(time.Second):
		}
		res, err = w.s.Restore(rctx, req)
	}
	cancel()
	if err != nil {
		_ = w.updateState(context.WithoutCancel(ctx), p.Stack, func(st *store.PolicyState) {
			st.Fences = slices.DeleteFunc(st.Fences, func(f store.Fence) bool { return f.Node == n && f.Snapshot == m.ID && len(f.Keep) == 0 })
		})
		w.emit(ctx, slog.LevelError, LossEvent{Kind: "restore-failed", Node: n, Stack: p.Stack, Snapshot: m.ID,
			Message: fmt.Sprintf("stack %s: restore of %s after the loss of node %s failed: %v", p.Stack, m.ID, n, err)})
		return
	}
	var keep []string
	for _, id := range res.Containers {
		keep = append(keep, id)
	}
	sort.Strings(keep)
	if err := w.updateState(context.WithoutCancel(ctx), p.Stack, func(st *store.PolicyState) {
		for i := range st.Fences {
			if st.Fences[i].Node == n && st.Fences[i].Snapshot == m.ID {
				st.Fences[i].Keep = keep
			}
		}
	}); err != nil {
		w.log.Warn("cannot record the restored containers in the fence (the fence still removes only the stack's containers on the lost node)", "stack", p.Stack, "err", err)
	}
	w.emit(ctx, slog.LevelWarn, LossEvent{Kind: "stack-restored", Node: n, Stack: p.Stack, Snapshot: m.ID,
		Message: fmt.Sprintf("stack %s rolled back to snapshot %s (%s mode) after the loss of node %s: restored in %s, %s after the node was declared lost; targets %v",
			p.Stack, m.ID, mode, n, time.Since(start).Round(time.Millisecond), time.Since(lostAt).Round(time.Millisecond), res.Targets)})
}

// clearFences removes, on node n whose agent answers again, the standalone containers
// of every stack fenced against it (nodeloss.Victims), then the fences.
func (w *lossWatcher) clearFences(ctx context.Context, n string) {
	w.r.mu.Lock()
	byStack := map[string][]store.Fence{}
	for name, st := range w.r.states {
		mine, _ := nodeloss.Pending(st.Fences, n)
		if len(mine) > 0 {
			byStack[name] = mine
		}
	}
	w.r.mu.Unlock()
	for name, fs := range byStack {
		list, err := w.s.restores.StandaloneOn(ctx, n, name)
		if err != nil {
			w.log.Warn("fence: cannot list the stack's containers on the returned node yet; retrying", "node", n, "stack", name, "err", err)
			continue
		}
		found := make([]nodeloss.Container, 0, len(list))
		for _, sc := range list {
			found = append(found, nodeloss.Container{ID: sc.ID})
		}
		victims := map[string]bool{}
		for _, f := range fs {
			for _, id := range nodeloss.Victims(f, found) {
				victims[id] = true
			}
		}
		ids := make([]string, 0, len(victims))
		for id := range victims {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = w.s.restores.RemoveOn(cctx, n, ids)
		cancel()
		if err != nil {
			w.log.Warn("fence: cannot remove the stack's superseded containers on the returned node yet; retrying", "node", n, "stack", name, "err", err)
			continue
		}
		if err := w.updateState(ctx, name, func(st *store.PolicyState) {
			_, st.Fences = nodeloss.Pending(st.Fences, n)
		}); err != nil {
			w.log.Warn("fence: cannot clear the stored fence; retrying", "node", n, "stack", name, "err", err)
			continue
		}
		w.emit(ctx, slog.LevelInfo, LossEvent{Kind: "fenced", Node: n, Stack: name, Snapshot: fs[len(fs)-1].Snapshot,
			Message: fmt.Sprintf("node %s is back: %d superseded container(s) of stack %s removed there (%v); the stack runs from its restore", n, len(ids), name, ids)})
	}
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Swarm-native restore (api.ModeSwarm, docs/restore.md "Swarm mode"): swarm's own
// replacement tasks come back from the snapshot, on the addresses swarm gives them.
//
//  1. stop the stack (scale to 0) while every image set is copied to every candidate
//     node: swarm, not us, decides where each replacement task runs, so the set must
//     already be on whichever node it picks when that node creates the container;
//  2. place every set on every candidate node for its service slot (`svc-S.N`), network
//     locked, with an address-map deadline (the runtime wrapper waits for the map);
//  3. scale the services back up: swarm creates the tasks (slots 1..N), allocates their
//     addresses and assigns nodes at once;
//  4. as soon as every task has a node and addresses, build one address map (snapshot IP
//     -> task IP) and send it to every node for every slot; the wrappers rewrite both ends
//     of every connection of the set and runc-restore;
//  5. wait until every task runs, check that each ran from its placed set (the worker
//     saw that container claim it), take the unused placements back, unlock all.
//
// All or nothing: on any failure the stack is scaled to 0 again, every placement is
// taken back (the set returned to its home node) and the copies are dropped. Run
// does these as named steps (stopAndCopy, place, scaleUp, followTasks,
// takeBackPlacements, dropCopies, unlock; undo), each documented below.

// SwarmRestore runs swarm-native restores through the node agents.
type SwarmRestore struct {
	Nodes Nodes
	Swarm stack.Swarm
	// TaskTimeout bounds the wait for the replacement tasks to run (default 2m, or
	// HoldFor's budget if longer).
	TaskTimeout time.Duration
	// LockFor bounds the restored tasks' network lock (default HoldFor's budget of the
	// sets' work, holdbudget.go); AddressMapFor the
	// wrappers' wait for the map (default 1m).
	LockFor, AddressMapFor time.Duration
	// Poll is the manager polling period (default 100ms).
	Poll   time.Duration
	Events func(ctx context.Context, e api.Event)
	Log    *slog.Logger
	// Kill, when set and Swarm is a ServiceStopper (stack.Docker is), force-removes the
	// stack's task containers, by node, once swarm ordered their shutdown (the stop of
	// step 1 and of the undo): what comes back is the snapshot, so the running
	// processes need no graceful stop (the coordinator's killTasks, as exact mode's
	// stop).
	Kill func(ctx context.Context, byNode map[string][]string)
	// RemoveStandalone, when set, removes the standalone containers of an earlier
	// exact-mode restore of the stack, after the scale to 0 (step 1): they would run
	// next to the restored tasks.
	RemoveStandalone func(ctx context.Context) error
	// Stopped, when set, is called once the stop of step 1 is done (the services at 0),
	// with the replicas the services had (nil when the Swarm cannot tell): the
	// coordinator ends the containers parked since their checkpoint and journals the
	// stop (restoreswarm.go). Its error fails the step (undo follows).
	Stopped func(ctx context.Context, replicas map[string]uint64) error
}

// SwarmOutcome is what a swarm-native restore did.
type SwarmOutcome struct {
	// Targets: snapshot SERVICE.SLOT -> node swarm ran its task on.
	Targets map[string]string
	// Containers: snapshot SERVICE.SLOT -> the task's container.
	Containers map[string]string
	// Tasks: snapshot SERVICE.SLOT -> the swarm task (SERVICE.SLOT of the new task).
	Tasks map[string]string
	// Addresses is the address map applied (old -> new).
	Addresses map[string]string
	// Closed are connections the workers reported would be closed.
	Closed []string
	// MS per phase: stop (scale to 0 until no task runs), stop_transfer (the stop and
	// the copies, in parallel), place, map (scale up to map sent), run, unlock.
	PhaseMS map[string]int64
}

// SlotPlan is one container of the snapshot and the task slot it comes back as.
type SlotPlan struct {
	Old store.Container
	// Service and Slot of the replacement task: swarm fills slots 1..N when a service
	// scales up from 0, so the snapshot's slots of a service, sorted, become 1..N.
	Service string
	Slot    int
	Set     string
	// Home is the node holding the set.
	Home string
}

// Key is the new task's SERVICE.SLOT.
func (p SlotPlan) Key() string { return fmt.Sprintf("%s.%d", p.Service, p.Slot) }

// PlanSlots maps every container of m to its replacement task slot and returns the
// replicas each service scales to. Pure.
func PlanSlots(m *store.Manifest) ([]SlotPlan, map[string]uint64, error) {
	byService := map[string][]store.Container{}
	for _, c := range m.Containers {
		if c.Service == "" || c.Slot <= 0 {
			return nil, nil, api.Errorf(api.CodeBadRequest, "snapshot %s: container %s is not a swarm service task: restore it with --mode exact", m.ID, c.Key())
		}
		if c.Images == nil || c.Images.Node == "" {
			return nil, nil, api.Errorf(api.CodeCorrupt, "snapshot %s: container %s has no durable image set", m.ID, c.Key())
		}
		byService[c.Service] = append(byService[c.Service], c)
	}
	var out []SlotPlan
	replicas := map[string]uint64{}
	names := make([]string, 0, len(byService))
	for s := range byService {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		cs := byService[s]
		sort.Slice(cs, func(i, j int) bool { return cs[i].Slot < cs[j].Slot })
		for i, c := range cs {
			out = append(out, SlotPlan{Old: c, Service: s, Slot: i + 1, Set: node.SetID(m.ID, c.Key()), Home: c.Images.Node})
		}
		replicas[s] = uint64(len(cs))
	}
	return out, replicas, nil
}

// oldAddresses pairs a snapshot container's IPs with its networks: one address per
// network when the counts agree (stack.Build records them so), else every IP on the
// only network.
func oldAddresses(c store.Container) []stack.NetAddr {
	var out []stack.NetAddr
	switch {
	case len(c.IPs) == len(c.Networks):
		for i, ip := range c.IPs {
			out = append(out, stack.NetAddr{Network: c.Networks[i], IP: ip})
		}
	case len(c.Networks) == 1:
		for _, ip := range c.IPs {
			out = append(out, stack.NetAddr{Network: c.Networks[0], IP: ip})
		}
	}
	return out
}

// CurrentTasks picks, for every planned slot, the newest task whose desired state is
// running or ready (swarm's current task of the slot) among those created at or after
// since. Pure.
func CurrentTasks(plan []SlotPlan, tasks []stack.Task, since time.Time) map[string]stack.Task {
	out := map[string]stack.Task{}
	want := map[string]bool{}
	for _, p := range plan {
		want[p.Key()] = true
	}
	for _, t := range tasks {
		if !want[t.Key()] || (t.DesiredState != "running" && t.DesiredState != "ready") || t.CreatedAt.Before(since) {
			continue
		}
		if cur, ok := out[t.Key()]; !ok || t.CreatedAt.After(cur.CreatedAt) {
			out[t.Key()] = t
		}
	}
	return out
}

// FailedTasks are, by SERVICE.SLOT, the tasks of planned slots, created at or after
// since, that failed (a container the runtime wrapper could not restore from its set:
// never a fresh start), whatever their desired state now (swarm sets a failed task's
// to shutdown at once, so it is no slot's current task, and may replace it or hold the
// replacement back), newest first. Pure.
func FailedTasks(plan []SlotPlan, tasks []stack.Task, since time.Time) map[string][]stack.Task {
	planned := map[string]bool{}
	for _, p := range plan {
		planned[p.Key()] = true
	}
	out := map[string][]stack.Task{}
	for _, t := range tasks {
		if k := t.Key(); planned[k] && t.State == "failed" && !t.CreatedAt.Before(since) {
			out[k] = append(out[k], t)
		}
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].CreatedAt.After(ts[j].CreatedAt) })
	}
	return out
}

// BuildAddressMap maps every snapshot address of the plan to its replacement task's
// address on the same network. It returns the slots whose task has no address there
// yet (not ready: poll again). Pure.
func BuildAddressMap(plan []SlotPlan, current map[string]stack.Task) (map[string]string, []string, error) {
	out := map[string]string{}
	var missing []string
	seen := map[string]string{}
	for _, p := range plan {
		t, ok := current[p.Key()]
		if !ok {
			missing = append(missing, p.Key())
			continue
		}
		olds := oldAddresses(p.Old)
		if len(olds) == 0 {
			return nil, nil, fmt.Errorf("snapshot container %s has no recorded address (IPs %v, networks %v): its connections cannot be re-addressed; restore with --mode exact", p.Old.Key(), p.Old.IPs, p.Old.Networks)
		}
		used := map[int]bool{}
		complete := true
		for _, o := range olds {
			oa, err := netip.ParseAddr(o.IP)
			if err != nil {
				return nil, nil, fmt.Errorf("snapshot container %s: bad address %q: %w", p.Old.Key(), o.IP, err)
			}
			found := false
			for i, n := range t.Addresses {
				na, err := netip.ParseAddr(n.IP)
				if used[i] || n.Network != o.Network || err != nil || na.Is4() != oa.Is4() {
					continue
				}
				used[i], found = true, true
				if prev, dup := seen[n.IP]; dup && prev != o.IP {
					return nil, nil, fmt.Errorf("swarm gave %s to two restored containers (%s and %s)", n.IP, prev, o.IP)
				}
				seen[n.IP] = o.IP
				out[o.IP] = n.IP
				break
			}
			if !found {
				complete = false
			}
		}
		if !complete {
			missing = append(missing, p.Key())
		}
	}
	return out, missing, nil
}

// stop scales the stack's services to 0 and waits until none of their tasks runs;
// with Kill (and a Swarm that can hand over the tasks' containers) they are killed
// once swarm ordered their shutdown instead of stopping gracefully. It returns the
// replicas the services had when the Swarm tells (a ServiceStopper), else nil.
func (r *SwarmRestore) stop(ctx context.Context, stackName string) (map[string]uint64, error) {
	if ss, ok := r.Swarm.(ServiceStopper); ok {
		return ss.StopServices(ctx, stackName, r.Kill) // nil Kill: they stop gracefully
	}
	return nil, r.Swarm.StopStack(ctx, stackName)
}

func (r *SwarmRestore) emit(ctx context.Context, id, key, node, phase, msg string, ms int64) {
	if r.Events != nil {
		r.Events(ctx, api.Event{ID: id, Container: key, Node: node, Phase: phase, Message: msg, MS: ms})
	}
}

func dur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func parallelDo(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

type nodeSlot struct{ node, key string }

// swarmRun is one swarm-native restore in progress: what Run's steps did so far,
// which undo takes back.
type swarmRun struct {
	r           *SwarmRestore
	log         *slog.Logger
	m           *store.Manifest
	nodes       []string // candidate nodes
	constraints []string
	plan        []SlotPlan
	replicas    map[string]uint64
	setOf       map[string]SlotPlan // new SERVICE.SLOT -> its plan
	lockFor     time.Duration
	out         *SwarmOutcome

	mu      sync.Mutex
	copied  map[nodeSlot]bool // (node, set) copies made by this restore
	placed  map[nodeSlot]bool // (node, new key) placements
	closed  map[string]bool   // connections the workers reported would be closed
	scaled  time.Time         // when the scale-up was asked
	since   time.Time         // tasks created before this are not the restore's
	addrMap map[string]string
	current map[string]stack.Task // the replacement tasks, once all run
	byNode  map[string][]string   // node -> the replacement tasks' containers
}

// Run restores m as swarm tasks. nodes are the candidate nodes (live workers where
// swarm may run the tasks); constraints are added to the services' placement.
//
// Its steps, in order (each one's doc says what it checks or changes); the first
// failure runs undo, which takes back what the steps before it did:
//
//	plan → stopAndCopy → place → scaleUp → followTasks → takeBackPlacements
//	     → dropCopies → unlock → removeConstraints
//
// From dropCopies on nothing is undone: the stack runs restored.
func (r *SwarmRestore) Run(ctx context.Context, m *store.Manifest, nodes []string, constraints []string) (*SwarmOutcome, error) {
	w, err := r.plan(m, nodes, constraints)
	if err != nil {
		return nil, err
	}
	for _, step := range []func(context.Context) error{w.stopAndCopy, w.place, w.scaleUp, w.followTasks, w.takeBackPlacements} {
		if err := step(ctx); err != nil {
			return nil, w.undo(ctx, err)
		}
	}
	w.dropCopies(ctx)
	lerr := w.unlock(ctx)
	// The placement constraints (migrate --to/--from) did their job: left on the
	// services they would pin them for good and contradict the next migrate's. Swarm
	// leaves the running tasks alone (their nodes satisfy what remains).
	// A failure here is reported, not an error: the stack runs restored.
	if err := r.removeConstraints(ctx, m, w.replicas, constraints); err != nil {
		w.log.Warn("restored, but the placement constraints stay on the services", "snapshot", m.ID, "err", err)
		r.emit(ctx, m.ID, "", "", "warning", "restored, but "+err.Error(), 0)
	}
	for c := range w.closed {
		w.out.Closed = append(w.out.Closed, c)
	}
	sort.Strings(w.out.Closed)
	w.log.Info("swarm-native restore done", "snapshot", m.ID, "targets", w.out.Targets, "phases_ms", w.out.PhaseMS)
	return w.out, lerr
}

// plan checks that m can be restored as swarm tasks on nodes (every container a
// service task with a durable set, a candidate node, a swarm manager) and maps every
// container to its replacement task's slot (PlanSlots). It changes nothing.
func (r *SwarmRestore) plan(m *store.Manifest, nodes []string, constraints []string) (*swarmRun, error) {
	plan, replicas, err := PlanSlots(m)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, api.Errorf(api.CodeNoWorker, "no live worker to restore %s on", m.ID)
	}
	if r.Swarm == nil {
		return nil, api.Errorf(api.CodeFailed, "swarm mode needs the swarm manager's API (run the coordinator with --docker MANAGER_SOCKET)")
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &swarmRun{r: r, log: log, m: m, nodes: nodes, constraints: constraints, plan: plan, replicas: replicas,
		setOf: map[string]SlotPlan{}, lockFor: dur(r.LockFor, HoldFor(m, nil)), // holdbudget.go: scales with the sets
		out:    &SwarmOutcome{Targets: map[string]string{}, Containers: map[string]string{}, Tasks: map[string]string{}, PhaseMS: map[string]int64{}},
		copied: map[nodeSlot]bool{}, placed: map[nodeSlot]bool{}, closed: map[string]bool{}}
	for _, p := range plan {
		w.setOf[p.Key()] = p
	}
	return w, nil
}

// undo takes back what the steps before a failure did: the stack is scaled to 0
// again, every placement is taken back (the set returned to its home node), every
// copy this restore made is dropped and the placement constraints it added are
// removed. It returns cause joined with whatever of that failed.
func (w *swarmRun) undo(ctx context.Context, cause error) error {
	r, m := w.r, w.m
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	errs := []error{cause}
	if _, err := r.stop(uctx, m.Stack); err != nil {
		errs = append(errs, fmt.Errorf("undo: scale the stack %s to 0 again (do it by hand: docker service scale SERVICE=0): %w", m.Stack, err))
	}
	for ns := range w.placed {
		p := w.setOf[ns.key]
		back := ""
		if ns.node == p.Home || hasCopy(p.Old, ns.node) { // copies.go: a replica goes back too
			back = p.Set
		}
		if _, err := r.Nodes.Unplace(uctx, ns.node, node.UnplaceRequest{Service: p.Service, Slot: p.Slot, Set: back}); err != nil {
			errs = append(errs, fmt.Errorf("undo: take back the set placed for %s on %s: %w", ns.key, ns.node, err))
		}
	}
	for ns := range w.copied {
		if err := r.Nodes.Drop(uctx, ns.node, ns.key); err != nil {
			errs = append(errs, fmt.Errorf("undo: drop the copy of %s on %s: %w", ns.key, ns.node, err))
		}
	}
	if err := r.removeConstraints(uctx, m, w.replicas, w.constraints); err != nil {
		errs = append(errs, fmt.Errorf("undo: %w", err))
	}
	r.emit(ctx, m.ID, "", "", "undone", fmt.Sprintf("stack %s scaled to 0, %d placements taken back, %d copies dropped", m.Stack, len(w.placed), len(w.copied)), 0)
	return errors.Join(errs...)
}

// stopAndCopy scales the stack's services to 0 (and removes the standalone
// containers of an earlier exact-mode restore, RemoveStandalone) while every set is
// copied from its home node to every other candidate node: swarm, not us, decides
// where each replacement task runs, so the set must already be on whichever node it
// picks. Undone by undo: the stack stays at 0, the copies are dropped.
func (w *swarmRun) stopAndCopy(ctx context.Context) error {
	r, m := w.r, w.m
	start := time.Now()
	var stopErr error
	var stopWG sync.WaitGroup
	stopWG.Add(1)
	go func() {
		defer stopWG.Done()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r.emit(ctx, m.ID, "", "", "stopping", "scaling the services of stack "+m.Stack+" to 0", 0)
		t0 := time.Now()
		var replicas map[string]uint64
		replicas, stopErr = r.stop(sctx, m.Stack)
		if stopErr == nil {
			ms := time.Since(t0).Milliseconds()
			w.mu.Lock()
			w.out.PhaseMS["stop"] = ms
			w.mu.Unlock()
			r.emit(ctx, m.ID, "", "", "stopped", "services of stack "+m.Stack+" at 0", ms)
		}
		if stopErr == nil && r.Stopped != nil {
			stopErr = r.Stopped(sctx, replicas)
		}
		if stopErr == nil && r.RemoveStandalone != nil {
			stopErr = r.RemoveStandalone(sctx)
		}
	}()
	type copyJob struct {
		p    SlotPlan
		node string
	}
	var jobs []copyJob
	for _, p := range w.plan {
		for _, n := range w.nodes {
			if n != p.Home && !hasCopy(p.Old, n) { // copies.go: a replica is there already, and stays
				jobs = append(jobs, copyJob{p, n})
			}
		}
	}
	terr := parallelDo(len(jobs), func(i int) error {
		j := jobs[i]
		addr, ok := r.Nodes.Addr(j.node)
		if !ok || addr == "" {
			return fmt.Errorf("%s: node %s has no live worker with a transfer address", j.p.Old.Key(), j.node)
		}
		rep, err := r.Nodes.Send(ctx, j.p.Home, node.SendRequest{Set: j.p.Set, To: addr})
		if err != nil && !errors.Is(err, node.ErrSetExists) {
			return fmt.Errorf("%s: copy its images from %s to %s: %w", j.p.Old.Key(), j.p.Home, j.node, err)
		}
		w.mu.Lock()
		w.copied[nodeSlot{j.node, j.p.Set}] = true
		w.mu.Unlock()
		switch {
		case rep != nil && rep.AlreadyThere:
			r.emit(ctx, m.ID, j.p.Old.Key(), j.node, "transferred", AlreadyThere(j.node), rep.MS)
		case rep != nil:
			r.emit(ctx, m.ID, j.p.Old.Key(), j.node, "transferred", j.p.Home+" -> "+j.node, rep.MS)
		}
		return nil
	})
	stopWG.Wait()
	if err := errors.Join(terr, stopErr); err != nil {
		return err
	}
	w.out.PhaseMS["stop_transfer"] = time.Since(start).Milliseconds()
	return nil
}

// place puts every set on every candidate node for its task slot (`svc-S.N`),
// network-locked for LockFor, with an address-map deadline (AddressMapFor: the
// runtime wrapper waits that long for the map). Undone by undo: every placement is
// taken back.
func (w *swarmRun) place(ctx context.Context) error {
	r, m := w.r, w.m
	t := time.Now()
	pjobs := w.slotJobs()
	mapFor := dur(r.AddressMapFor, time.Minute)
	err := parallelDo(len(pjobs), func(i int) error {
		j := pjobs[i]
		rep, err := r.Nodes.Place(ctx, j.node, node.PlaceRequest{Set: j.p.Set, Service: j.p.Service, Slot: j.p.Slot,
			LockFor: w.lockFor, AddressMapFor: mapFor})
		if err != nil {
			return fmt.Errorf("%s: place its set for task %s on %s: %w", j.p.Old.Key(), j.p.Key(), j.node, err)
		}
		w.mu.Lock()
		w.placed[nodeSlot{j.node, j.p.Key()}] = true
		for _, c := range rep.Closed {
			w.closed[c] = true
		}
		w.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	w.out.PhaseMS["place"] = time.Since(t).Milliseconds()
	r.emit(ctx, m.ID, "", "", "placed", fmt.Sprintf("%d sets on %d nodes (%v)", len(w.plan), len(w.nodes), w.nodes), w.out.PhaseMS["place"])
	return nil
}

// scaleUp scales the services back to the snapshot's replicas, with the added
// constraints: swarm creates the tasks (slots 1..N), allocates their addresses and
// assigns nodes. Undone by undo: the stack is scaled to 0 again, the constraints
// removed.
func (w *swarmRun) scaleUp(ctx context.Context) error {
	r, m := w.r, w.m
	w.scaled = time.Now()
	w.since = w.scaled.Add(-time.Second) // the manager's clock is this machine's in the lab; a margin for others
	if err := r.Swarm.ScaleServices(ctx, m.Stack, w.replicas, w.constraints); err != nil {
		return fmt.Errorf("start the replacement tasks: %w", err)
	}
	r.emit(ctx, m.ID, "", "", "scaled", fmt.Sprintf("services of %s scaled to %v", m.Stack, w.replicas), time.Since(w.scaled).Milliseconds())
	return nil
}

// followTasks polls the replacement tasks until every one runs (within TaskTimeout):
// as soon as every task has a node and its addresses, it builds the address map
// (snapshot IP -> task IP, BuildAddressMap) and sends it to every placement
// (sendMap); the wrappers then rewrite both ends of every connection and
// runc-restore. A task that fails, or one that does not run in time, fails the step.
// Undone by undo (the stack is scaled to 0 again).
func (w *swarmRun) followTasks(ctx context.Context) error {
	r, m := w.r, w.m
	poll := dur(r.Poll, 100*time.Millisecond)
	wctx, cancel := context.WithTimeout(ctx, dur(r.TaskTimeout, max(2*time.Minute, HoldFor(m, nil))))
	defer cancel()
	mapSent := false
	for {
		tasks, err := r.Swarm.Tasks(wctx, m.Stack)
		if err != nil && wctx.Err() == nil {
			return fmt.Errorf("follow the replacement tasks: %w", err)
		}
		current := CurrentTasks(w.plan, tasks, w.since)
		w.current = current
		for _, p := range w.plan {
			if tk, ok := current[p.Key()]; ok {
				switch tk.State {
				case "failed", "rejected", "shutdown", "complete", "orphaned", "remove":
					return fmt.Errorf("task %s (%s, snapshot container %s) %s on %s: %s (the runtime log of that node's dockerd has the wrapper's error)",
						p.Key(), tk.TaskID, p.Old.Key(), tk.State, tk.Node, tk.Err)
				}
			}
		}
		// A task that failed fails the restore at once, also one swarm already set
		// to shutdown and replaced (FailedTasks): all or nothing; in the lab swarm's
		// retry of a deterministic failure failed again ~60 s later (about the
		// address-map wait), or no replacement came within 2 min.
		failed := FailedTasks(w.plan, tasks, w.since)
		for _, p := range w.plan {
			if fs := failed[p.Key()]; len(fs) > 0 {
				return fmt.Errorf("task %s (%s, snapshot container %s) failed on %s: %s (the runtime log of that node's dockerd has the wrapper's error)",
					p.Key(), fs[0].TaskID, p.Old.Key(), fs[0].Node, fs[0].Err)
			}
		}
		if !mapSent {
			am, missing, err := BuildAddressMap(w.plan, current)
			if err != nil {
				return err
			}
			assigned := true
			for _, p := range w.plan {
				if current[p.Key()].Node == "" {
					assigned = false
				}
			}
			if len(missing) == 0 && assigned {
				w.addrMap = am
				if err := w.sendMap(ctx, current, am); err != nil {
					return err
				}
				mapSent = true
				w.out.PhaseMS["map"] = time.Since(w.scaled).Milliseconds()
				r.emit(ctx, m.ID, "", "", "address-map", describeMap(am), w.out.PhaseMS["map"])
			}
		}
		running := 0
		for _, p := range w.plan {
			if tk := current[p.Key()]; tk.State == "running" && tk.ContainerID != "" {
				running++
			}
		}
		if mapSent && running == len(w.plan) {
			break
		}
		if wctx.Err() != nil {
			var waiting []string
			for _, p := range w.plan {
				tk := current[p.Key()]
				if tk.State != "running" {
					waiting = append(waiting, fmt.Sprintf("%s on %q is %q %s", p.Key(), tk.Node, tk.State, tk.Err))
				}
			}
			return fmt.Errorf("the replacement tasks did not all run within %s (address map sent: %v): %s",
				dur(r.TaskTimeout, max(2*time.Minute, HoldFor(m, nil))), mapSent, strings.Join(waiting, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	w.out.PhaseMS["run"] = time.Since(w.scaled).Milliseconds()
	w.out.Addresses = w.addrMap
	w.byNode = map[string][]string{}
	for _, p := range w.plan {
		tk := w.current[p.Key()]
		w.out.Targets[p.Old.Key()] = tk.Node
		w.out.Containers[p.Old.Key()] = tk.ContainerID
		w.out.Tasks[p.Old.Key()] = p.Key()
		w.byNode[tk.Node] = append(w.byNode[tk.Node], tk.ContainerID)
	}
	return nil
}

// takeBackPlacements checks that each task ran from its placed set (its node's worker
// saw that very container claim it: a fresh start is not a restore) and takes the
// unused placements back (the set returned to its home node). Undone by undo (what
// is still placed is taken back, the stack scaled to 0).
func (w *swarmRun) takeBackPlacements(ctx context.Context) error {
	r := w.r
	var ujobs []nodeSlot
	for ns := range w.placed {
		ujobs = append(ujobs, ns)
	}
	return parallelDo(len(ujobs), func(i int) error {
		ns := ujobs[i]
		p := w.setOf[ns.key]
		tk := w.current[ns.key]
		back := ""
		if (ns.node == p.Home || hasCopy(p.Old, ns.node)) && ns.node != tk.Node { // copies.go: a replica goes back too
			back = p.Set
		}
		rep, err := r.Nodes.Unplace(ctx, ns.node, node.UnplaceRequest{Service: p.Service, Slot: p.Slot, Set: back})
		if err != nil {
			return fmt.Errorf("take back the unused placement of %s on %s: %w", ns.key, ns.node, err)
		}
		w.mu.Lock()
		delete(w.placed, ns)
		w.mu.Unlock()
		if ns.node == tk.Node && (rep.Removed || !SameContainer(rep.Container, tk.ContainerID)) {
			return fmt.Errorf("task %s (container %s on %s) did not start from its checkpoint (its placed set was %s, claimed by %q): a fresh start is not a restore",
				ns.key, shortID12(tk.ContainerID), tk.Node, map[bool]string{true: "still unclaimed", false: "claimed by another container"}[rep.Removed], rep.Container)
		}
		return nil
	})
}

// dropCopies deletes the copies made for the placements (best effort: a copy left
// behind is only disk space, and 'swarmckpt rm' does not know about it, so the log
// says so). Nothing to undo.
func (w *swarmRun) dropCopies(ctx context.Context) {
	for ns := range w.copied {
		if err := w.r.Nodes.Drop(ctx, ns.node, ns.key); err != nil {
			w.log.Warn("drop a copy made for a swarm-mode restore (delete it by hand)", "node", ns.node, "set", ns.key, "err", err)
		}
	}
}

// unlock lifts the network lock of every restored task together: no restored task
// accepted a packet before every socket of the set existed. A failure is reported
// (the workers' watchdogs unlock at LockFor); the stack runs restored.
func (w *swarmRun) unlock(ctx context.Context) error {
	r, m := w.r, w.m
	t := time.Now()
	var lerr []error
	for nodeName, ids := range w.byNode {
		if err := r.Nodes.Unlock(ctx, nodeName, ids); err != nil {
			lerr = append(lerr, fmt.Errorf("unlock restored tasks on %s (their worker's watchdog unlocks them within %s): %w", nodeName, w.lockFor, err))
		}
	}
	w.out.PhaseMS["unlock"] = time.Since(t).Milliseconds()
	r.emit(ctx, m.ID, "", "", "unlocked", fmt.Sprintf("%d restored tasks", len(w.plan)), w.out.PhaseMS["unlock"])
	return errors.Join(lerr...)
}

// removeConstraints takes constraints off the restored services again (when the
// Swarm can: stack.ConstraintRemover).
func (r *SwarmRestore) removeConstraints(ctx context.Context, m *store.Manifest, replicas map[string]uint64, constraints []string) error {
	if len(constraints) == 0 {
		return nil
	}
	cr, ok := r.Swarm.(stack.ConstraintRemover)
	if !ok {
		return nil
	}
	services := make([]string, 0, len(replicas))
	for s := range replicas {
		services = append(services, s)
	}
	sort.Strings(services)
	if err := cr.RemoveConstraints(ctx, m.Stack, services, constraints); err != nil {
		return fmt.Errorf("remove the placement constraints %v the restore added to %v: %w", constraints, services, err)
	}
	r.emit(ctx, m.ID, "", "", "constraints-removed", fmt.Sprintf("%v from %v", constraints, services), 0)
	return nil
}

// slotJob is one task slot's set on one candidate node.
type slotJob struct {
	p    SlotPlan
	node string
}

// slotJobs pairs every slot of the plan with every candidate node (what place and
// sendMap do for each).
func (w *swarmRun) slotJobs() []slotJob {
	var jobs []slotJob
	for _, p := range w.plan {
		for _, n := range w.nodes {
			jobs = append(jobs, slotJob{p, n})
		}
	}
	return jobs
}

// sendMap gives every placement its address map; it must reach the node swarm
// assigned each task to (elsewhere the placement is unused and taken back later).
func (w *swarmRun) sendMap(ctx context.Context, current map[string]stack.Task, am map[string]string) error {
	jobs := w.slotJobs()
	return parallelDo(len(jobs), func(i int) error {
		j := jobs[i]
		err := w.r.Nodes.AddressMap(ctx, j.node, node.AddressMapRequest{Service: j.p.Service, Slot: j.p.Slot, Addresses: am})
		if err != nil && current[j.p.Key()].Node == j.node {
			return fmt.Errorf("give task %s on %s its address map: %w", j.p.Key(), j.node, err)
		}
		return nil
	})
}

// SameContainer says whether two container ids (full or short) name one container.
func SameContainer(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func shortID12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func describeMap(am map[string]string) string {
	keys := make([]string, 0, len(am))
	for k := range am {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"->"+am[k])
	}
	return strings.Join(parts, ", ")
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
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
// taken back (the set returned to its home node) and the copies are dropped.

// SwarmRestore runs swarm-native restores through the node agents.
type SwarmRestore struct {
	Bus bus.Transport
	// Addr returns a node's transfer endpoint.
	Addr  func(node string) (string, bool)
	Swarm stack.Swarm
	// Timeout bounds each agent call (default 5m); TaskTimeout the wait for the
	// replacement tasks to run (default 2m).
	Timeout, TaskTimeout time.Duration
	// LockFor bounds the restored tasks' network lock (default 2m); AddressMapFor the
	// wrappers' wait for the map (default 1m).
	LockFor, AddressMapFor time.Duration
	// Poll is the manager polling period (default 100ms).
	Poll   time.Duration
	Events func(ctx context.Context, e api.Event)
	Log    *slog.Logger
	// Kill, when set and Swarm is a ServiceStopper (stack.Docker is), force-removes the
	// stack's task containers, by node, once swarm ordered their shutdown (the stop of
	// step 1 and of the undo): what comes back is the snapshot, so the running
	// processes need no graceful stop (Service.killTasks, as exact mode's stop).
	Kill func(ctx context.Context, byNode map[string][]string)
	// RemoveStandalone, when set, removes the standalone containers of an earlier
	// exact-mode restore of the stack, after the scale to 0 (step 1): they would run
	// next to the restored tasks.
	RemoveStandalone func(ctx context.Context) error
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
// once swarm ordered their shutdown instead of stopping gracefully.
func (r *SwarmRestore) stop(ctx context.Context, stackName string) error {
	if ss, ok := r.Swarm.(ServiceStopper); ok && r.Kill != nil {
		_, err := ss.StopServices(ctx, stackName, r.Kill)
		return err
	}
	return r.Swarm.StopStack(ctx, stackName)
}

func (r *SwarmRestore) agents() *AgentRestorer {
	return &AgentRestorer{Bus: r.Bus, Addr: r.Addr, Timeout: r.Timeout}
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

// Run restores m as swarm tasks. nodes are the candidate nodes (live workers where
// swarm may run the tasks); constraints are added to the services' placement.
func (r *SwarmRestore) Run(ctx context.Context, m *store.Manifest, nodes []string, constraints []string) (*SwarmOutcome, error) {
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
	ag := r.agents()
	out := &SwarmOutcome{Targets: map[string]string{}, Containers: map[string]string{}, Tasks: map[string]string{}, PhaseMS: map[string]int64{}}
	var mu sync.Mutex
	copied := map[nodeSlot]bool{} // (node, set) copies made by this restore
	placed := map[nodeSlot]bool{} // (node, new key) placements
	setOf := map[string]SlotPlan{}
	for _, p := range plan {
		setOf[p.Key()] = p
	}
	undo := func(cause error) error {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		errs := []error{cause}
		if err := r.stop(uctx, m.Stack); err != nil {
			errs = append(errs, fmt.Errorf("undo: scale the stack %s to 0 again (do it by hand: docker service scale SERVICE=0): %w", m.Stack, err))
		}
		for ns := range placed {
			p := setOf[ns.key]
			back := ""
			if ns.node == p.Home || hasCopy(p.Old, ns.node) { // replicate.go: a replica goes back too
				back = p.Set
			}
			if _, err := agentCall[node.UnplaceReply](uctx, ag, node.UnplaceSubject(ns.node), node.UnplaceRequest{Service: p.Service, Slot: p.Slot, Set: back}); err != nil {
				errs = append(errs, fmt.Errorf("undo: take back the set placed for %s on %s: %w", ns.key, ns.node, err))
			}
		}
		for ns := range copied {
			if _, err := agentCall[node.DropReply](uctx, ag, node.DropSubject(ns.node), node.DropRequest{Set: ns.key}); err != nil {
				errs = append(errs, fmt.Errorf("undo: drop the copy of %s on %s: %w", ns.key, ns.node, err))
			}
		}
		if err := r.removeConstraints(uctx, m, replicas, constraints); err != nil {
			errs = append(errs, fmt.Errorf("undo: %w", err))
		}
		r.emit(ctx, m.ID, "", "", "undone", fmt.Sprintf("stack %s scaled to 0, %d placements taken back, %d copies dropped", m.Stack, len(placed), len(copied)), 0)
		return errors.Join(errs...)
	}

	// 1. Stop the stack while the sets travel to every candidate node.
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
		stopErr = r.stop(sctx, m.Stack)
		if stopErr == nil {
			out.PhaseMS["stop"] = time.Since(t0).Milliseconds()
			r.emit(ctx, m.ID, "", "", "stopped", "services of stack "+m.Stack+" at 0", out.PhaseMS["stop"])
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
	for _, p := range plan {
		for _, n := range nodes {
			if n != p.Home && !hasCopy(p.Old, n) { // replicate.go: a replica is there already, and stays
				jobs = append(jobs, copyJob{p, n})
			}
		}
	}
	terr := parallelDo(len(jobs), func(i int) error {
		j := jobs[i]
		addr, ok := r.Addr(j.node)
		if !ok || addr == "" {
			return fmt.Errorf("%s: node %s has no live worker with a transfer address", j.p.Old.Key(), j.node)
		}
		rep, err := agentCall[node.SendReply](ctx, ag, node.SendSubject(j.p.Home), node.SendRequest{Set: j.p.Set, To: addr})
		if err != nil && !errors.Is(err, node.ErrSetExists) {
			return fmt.Errorf("%s: copy its images from %s to %s: %w", j.p.Old.Key(), j.p.Home, j.node, err)
		}
		mu.Lock()
		copied[nodeSlot{j.node, j.p.Set}] = true
		mu.Unlock()
		switch {
		case rep != nil && rep.AlreadyThere:
			r.emit(ctx, m.ID, j.p.Old.Key(), j.node, "transferred", alreadyThere(j.node), rep.MS)
		case rep != nil:
			r.emit(ctx, m.ID, j.p.Old.Key(), j.node, "transferred", j.p.Home+" -> "+j.node, rep.MS)
		}
		return nil
	})
	stopWG.Wait()
	if err := errors.Join(terr, stopErr); err != nil {
		return nil, undo(err)
	}
	out.PhaseMS["stop_transfer"] = time.Since(start).Milliseconds()

	// 2. Place every set on every candidate node.
	t := time.Now()
	type placeJob struct {
		p    SlotPlan
		node string
	}
	var pjobs []placeJob
	for _, p := range plan {
		for _, n := range nodes {
			pjobs = append(pjobs, placeJob{p, n})
		}
	}
	lockFor := dur(r.LockFor, 2*time.Minute)
	mapFor := dur(r.AddressMapFor, time.Minute)
	closed := map[string]bool{}
	perr := parallelDo(len(pjobs), func(i int) error {
		j := pjobs[i]
		rep, err := agentCall[node.PlaceReply](ctx, ag, node.PlaceSubject(j.node), node.PlaceRequest{Set: j.p.Set, Service: j.p.Service, Slot: j.p.Slot,
			LockFor: lockFor, AddressMapFor: mapFor})
		if err != nil {
			return fmt.Errorf("%s: place its set for task %s on %s: %w", j.p.Old.Key(), j.p.Key(), j.node, err)
		}
		mu.Lock()
		placed[nodeSlot{j.node, j.p.Key()}] = true
		for _, c := range rep.Closed {
			closed[c] = true
		}
		mu.Unlock()
		return nil
	})
	if perr != nil {
		return nil, undo(perr)
	}
	out.PhaseMS["place"] = time.Since(t).Milliseconds()
	r.emit(ctx, m.ID, "", "", "placed", fmt.Sprintf("%d sets on %d nodes (%v)", len(plan), len(nodes), nodes), out.PhaseMS["place"])

	// 3. Scale up: swarm creates the replacement tasks.
	t = time.Now()
	since := t.Add(-time.Second) // the manager's clock is this machine's in the lab; a margin for others
	if err := r.Swarm.ScaleServices(ctx, m.Stack, replicas, constraints); err != nil {
		return nil, undo(fmt.Errorf("start the replacement tasks: %w", err))
	}
	r.emit(ctx, m.ID, "", "", "scaled", fmt.Sprintf("services of %s scaled to %v", m.Stack, replicas), time.Since(t).Milliseconds())

	// 4-5. Follow the tasks: map as soon as every task has its addresses and node,
	// then wait until all run.
	poll := dur(r.Poll, 100*time.Millisecond)
	wctx, cancel := context.WithTimeout(ctx, dur(r.TaskTimeout, 2*time.Minute))
	defer cancel()
	var addrMap map[string]string
	var current map[string]stack.Task
	mapSent := false
	for {
		tasks, err := r.Swarm.Tasks(wctx, m.Stack)
		if err != nil && wctx.Err() == nil {
			return nil, undo(fmt.Errorf("follow the replacement tasks: %w", err))
		}
		current = CurrentTasks(plan, tasks, since)
		for _, p := range plan {
			if tk, ok := current[p.Key()]; ok {
				switch tk.State {
				case "failed", "rejected", "shutdown", "complete", "orphaned", "remove":
					return nil, undo(fmt.Errorf("task %s (%s, snapshot container %s) %s on %s: %s (the runtime log of that node's dockerd has the wrapper's error)",
						p.Key(), tk.TaskID, p.Old.Key(), tk.State, tk.Node, tk.Err))
				}
			}
		}
		if !mapSent {
			am, missing, err := BuildAddressMap(plan, current)
			if err != nil {
				return nil, undo(err)
			}
			assigned := true
			for _, p := range plan {
				if current[p.Key()].Node == "" {
					assigned = false
				}
			}
			if len(missing) == 0 && assigned {
				addrMap = am
				if err := r.sendMap(ctx, ag, m.ID, plan, nodes, current, am); err != nil {
					return nil, undo(err)
				}
				mapSent = true
				out.PhaseMS["map"] = time.Since(t).Milliseconds()
				r.emit(ctx, m.ID, "", "", "address-map", describeMap(am), out.PhaseMS["map"])
			}
		}
		running := 0
		for _, p := range plan {
			if tk := current[p.Key()]; tk.State == "running" && tk.ContainerID != "" {
				running++
			}
		}
		if mapSent && running == len(plan) {
			break
		}
		if wctx.Err() != nil {
			var waiting []string
			for _, p := range plan {
				tk := current[p.Key()]
				if tk.State != "running" {
					waiting = append(waiting, fmt.Sprintf("%s on %q is %q %s", p.Key(), tk.Node, tk.State, tk.Err))
				}
			}
			return nil, undo(fmt.Errorf("the replacement tasks did not all run within %s (address map sent: %v): %s",
				dur(r.TaskTimeout, 2*time.Minute), mapSent, strings.Join(waiting, "; ")))
		}
		select {
		case <-ctx.Done():
			return nil, undo(ctx.Err())
		case <-time.After(poll):
		}
	}
	out.PhaseMS["run"] = time.Since(t).Milliseconds()

	// Each task must have run from its placed set: its node's worker saw that very
	// container claim it. The unused placements are taken back (the set returned to
	// its home node, copies deleted).
	byNode := map[string][]string{}
	var verr []error
	for _, p := range plan {
		tk := current[p.Key()]
		out.Targets[p.Old.Key()] = tk.Node
		out.Containers[p.Old.Key()] = tk.ContainerID
		out.Tasks[p.Old.Key()] = p.Key()
		byNode[tk.Node] = append(byNode[tk.Node], tk.ContainerID)
	}
	var ujobs []nodeSlot
	for ns := range placed {
		ujobs = append(ujobs, ns)
	}
	uerr := parallelDo(len(ujobs), func(i int) error {
		ns := ujobs[i]
		p := setOf[ns.key]
		tk := current[ns.key]
		back := ""
		if (ns.node == p.Home || hasCopy(p.Old, ns.node)) && ns.node != tk.Node { // replicate.go: a replica goes back too
			back = p.Set
		}
		rep, err := agentCall[node.UnplaceReply](ctx, ag, node.UnplaceSubject(ns.node), node.UnplaceRequest{Service: p.Service, Slot: p.Slot, Set: back})
		if err != nil {
			return fmt.Errorf("take back the unused placement of %s on %s: %w", ns.key, ns.node, err)
		}
		mu.Lock()
		delete(placed, ns)
		mu.Unlock()
		if ns.node == tk.Node && (rep.Removed || !sameContainer(rep.Container, tk.ContainerID)) {
			return fmt.Errorf("task %s (container %s on %s) did not start from its checkpoint (its placed set was %s, claimed by %q): a fresh start is not a restore",
				ns.key, shortID12(tk.ContainerID), tk.Node, map[bool]string{true: "still unclaimed", false: "claimed by another container"}[rep.Removed], rep.Container)
		}
		return nil
	})
	if uerr != nil {
		verr = append(verr, uerr)
	}
	if err := errors.Join(verr...); err != nil {
		return nil, undo(err)
	}

	// The copies made for the placements go (best effort: a copy left behind is only
	// disk space, and 'swarmckpt rm' does not know about it, so say so).
	for ns := range copied {
		if _, err := agentCall[node.DropReply](ctx, ag, node.DropSubject(ns.node), node.DropRequest{Set: ns.key}); err != nil {
			log.Warn("drop a copy made for a swarm-mode restore (delete it by hand)", "node", ns.node, "set", ns.key, "err", err)
		}
	}

	// Unlock all together: no restored task accepted a packet before every socket of
	// the set existed.
	t = time.Now()
	var lerr []error
	for nodeName, ids := range byNode {
		if _, err := agentCall[node.UnlockReply](ctx, ag, node.UnlockSubject(nodeName), node.UnlockRequest{Containers: ids}); err != nil {
			lerr = append(lerr, fmt.Errorf("unlock restored tasks on %s (their worker's watchdog unlocks them within %s): %w", nodeName, lockFor, err))
		}
	}
	out.PhaseMS["unlock"] = time.Since(t).Milliseconds()
	r.emit(ctx, m.ID, "", "", "unlocked", fmt.Sprintf("%d restored tasks", len(plan)), out.PhaseMS["unlock"])
	out.Addresses = addrMap
	// The placement constraints (migrate --to/--from) did their job: left on the
	// services they would pin them for good and contradict the next migrate's. Swarm
	// leaves the running tasks alone (their nodes satisfy what remains).
	// A failure here is reported, not an error: the stack runs restored.
	if err := r.removeConstraints(ctx, m, replicas, constraints); err != nil {
		log.Warn("restored, but the placement constraints stay on the services", "snapshot", m.ID, "err", err)
		r.emit(ctx, m.ID, "", "", "warning", "restored, but "+err.Error(), 0)
	}
	for c := range closed {
		out.Closed = append(out.Closed, c)
	}
	sort.Strings(out.Closed)
	log.Info("swarm-native restore done", "snapshot", m.ID, "targets", out.Targets, "phases_ms", out.PhaseMS)
	return out, errors.Join(lerr...)
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

// sendMap gives every placement its address map; it must reach the node swarm
// assigned each task to (elsewhere the placement is unused and taken back later).
func (r *SwarmRestore) sendMap(ctx context.Context, ag *AgentRestorer, id string, plan []SlotPlan, nodes []string, current map[string]stack.Task, am map[string]string) error {
	type job struct {
		p    SlotPlan
		node string
	}
	var jobs []job
	for _, p := range plan {
		for _, n := range nodes {
			jobs = append(jobs, job{p, n})
		}
	}
	return parallelDo(len(jobs), func(i int) error {
		j := jobs[i]
		_, err := agentCall[node.AddressMapReply](ctx, ag, node.AddressMapSubject(j.node), node.AddressMapRequest{Service: j.p.Service, Slot: j.p.Slot, Addresses: am})
		if err != nil && current[j.p.Key()].Node == j.node {
			return fmt.Errorf("give task %s on %s its address map: %w", j.p.Key(), j.node, err)
		}
		return nil
	})
}

func sameContainer(a, b string) bool {
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

// restoreSwarm serves RestoreRequest with api.ModeSwarm: the Stopper must also be a
// stack.Swarm (stack.Docker is), the Restorer an *AgentRestorer (its bus and
// transfer addresses are used).
func (s *Service) restoreSwarm(ctx context.Context, m *store.Manifest, req api.RestoreRequest, pk *parkedStack) (*api.RestoreResult, error) {
	if len(req.Targets) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--node cannot be honoured with --mode swarm: swarm places the replacement tasks itself (use --mode exact to choose nodes)")
	}
	sw, ok := s.cfg.Stopper.(stack.Swarm)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator has no swarm manager API (run it with --docker MANAGER_SOCKET)")
	}
	ar, ok := s.cfg.Restorer.(*AgentRestorer)
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "--mode swarm is not available: this coordinator's restorer does not talk to node agents")
	}
	var nodes []string
	for _, w := range s.live.live() {
		nodes = append(nodes, w.Node)
	}
	sort.Strings(nodes)
	for _, c := range req.Constraints {
		// migrate --to/--from: a node without a live worker cannot take the tasks (and
		// an unknown one would leave them pending until the timeout).
		if n, ok := strings.CutPrefix(c, "node.hostname=="); ok && !slices.Contains(nodes, n) {
			return nil, api.Errorf(api.CodeNoWorker, "node %s has no live worker (live: %v)", n, nodes)
		}
	}
	// Swarm can place the tasks only on nodes the hostname constraints allow: the sets
	// go there only (--to NODE: one node instead of all of them).
	live := nodes
	if nodes = stack.EligibleNodes(nodes, req.Constraints); len(nodes) == 0 {
		return nil, api.Errorf(api.CodeNoWorker, "no node with a live worker satisfies %v (live: %v)", req.Constraints, live)
	}
	kill := s.killTasks
	if pk != nil {
		kill = pk.killFunc() // a migration's parked containers end with the stop
	}
	sr := &SwarmRestore{Bus: ar.Bus, Addr: ar.Addr, Swarm: sw, Timeout: ar.Timeout, Events: s.event, Log: s.log, Kill: kill,
		RemoveStandalone: func(ctx context.Context) error { _, err := s.removeStandalone(ctx, m); return err }}
	start := time.Now()
	s.event(ctx, api.Event{ID: m.ID, Phase: "restoring", Message: fmt.Sprintf("as swarm tasks (swarm places them; sets go to %v)", nodes)})
	out, rerr := sr.Run(ctx, m, nodes, req.Constraints)
	rec := store.Restore{At: time.Now().UTC(), OK: rerr == nil, Mode: api.ModeSwarm}
	if out != nil {
		rec.Targets, rec.Addresses = out.Targets, out.Addresses
	}
	if rerr != nil {
		rec.Error = "mode swarm: " + rerr.Error()
	}
	m.Restores = append(m.Restores, rec)
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record restore", "snapshot", m.ID, "err", err)
	}
	if rerr != nil {
		s.event(ctx, api.Event{ID: m.ID, Phase: "restore-failed", Message: rerr.Error()})
		var ae *api.Error
		if errors.As(rerr, &ae) {
			return nil, rerr
		}
		return nil, api.Errorf(api.CodeFailed, "restore of %s as swarm tasks: %v", m.ID, rerr)
	}
	res := &api.RestoreResult{ID: m.ID, Mode: api.ModeSwarm, Targets: out.Targets, Containers: out.Containers,
		Addresses: out.Addresses, Closed: out.Closed, TotalMS: time.Since(start).Milliseconds()}
	s.event(ctx, api.Event{ID: m.ID, Phase: "restored", Message: fmt.Sprintf("as swarm tasks; phases (ms): %v", out.PhaseMS), MS: res.TotalMS})
	return res, nil
}

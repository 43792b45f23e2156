package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/swarmckpt/swarmckpt/coordinator/nodecall"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// The drain controller (docs/drain.md, decision "A"): the reconciler arms the running
// tasks of stacks labelled swarmckpt.on-drain: migrate on their nodes (armTasks); when
// swarm stops one, the runtime wrapper holds the stop and the node's agent reports it
// (node.DrainEvent on node.DrainEventSubject). The controller decides with the pure
// decideHeld: on a draining node, with swarm's replacement task assigned to another
// node, the held container is checkpointed with exit into a set, the set is sent to
// the replacement's node and placed for its service slot (the swarm-mode restore
// path: the target's wrapper restores the replacement when swarm starts it), and only
// then is the stop released, so that swarm starts the replacement after the set is in
// place. Anything else releases the stop at once.

// DrainSwarm is what the drain controller asks of the swarm manager (stack.Docker,
// stack.FakeSwarm).
type DrainSwarm interface {
	// Tasks lists the tasks of the stack's services (every desired state).
	Tasks(ctx context.Context, stack string) ([]stack.Task, error)
	// NodeAvailability is the node's swarm availability (active, pause, drain).
	NodeAvailability(ctx context.Context, node string) (string, error)
}

// Hold budget (docs/drain.md): min(maxDrainHold, stop_grace_period) minus
// drainMargin; Docker's default stop_grace_period is 10 s.
const (
	maxDrainHold       = 50 * time.Second
	drainMargin        = time.Second
	defaultGracePeriod = 10 * time.Second
	// minDrainBudget: a shorter hold leaves no time for a checkpoint (the worker
	// refuses one with less than 1 s left), so such a task is not armed.
	minDrainBudget = 2 * time.Second
	// drainMapWait is how long the replacement's wrapper waits for its address map
	// (sent right after the placement, before the stop is released).
	drainMapWait = 30 * time.Second
)

// drainBudget is the hold budget of a task whose stop_grace_period is grace (0: the
// default); <= 0 means the task cannot be held (its grace period is too short).
func drainBudget(grace time.Duration) time.Duration {
	if grace <= 0 {
		grace = defaultGracePeriod
	}
	return min(maxDrainHold, grace) - drainMargin
}

// heldAction is decideHeld's answer.
type heldAction struct {
	// Migrate: checkpoint, send to Target, place for the slot, then release.
	Migrate bool
	Target  string
	// Reason says why the stop is released without a checkpoint (Migrate false).
	Reason string
}

// decideHeld decides a held stop (pure): availability is the held container's node's,
// tasks the stack's tasks as the manager reports them.
func decideHeld(e node.DrainEvent, availability string, tasks []stack.Task, moving bool) heldAction {
	release := func(why string) heldAction { return heldAction{Reason: why} }
	moving = moving || strings.HasPrefix(e.Policy, movePolicyPrefix)
	if e.Policy != policy.OnDrainMigrate && !moving {
		return release(fmt.Sprintf("the stack's on-drain policy is %q, not %q", e.Policy, policy.OnDrainMigrate))
	}
	if e.Stack == "" || e.Service == "" {
		return release("the container was armed without its swarm task")
	}
	if availability != stack.AvailabilityDrain && !moving {
		return release(fmt.Sprintf("node %s is %s, not draining: a stop for another reason (service update, scale down, stack rm, docker stop) proceeds", e.Node, availability))
	}
	var old *stack.Task
	for i := range tasks {
		if tasks[i].ContainerID == e.ContainerID {
			old = &tasks[i]
		}
	}
	if old == nil {
		return release("the manager lists no task with this container")
	}
	var repl []stack.Task
	for _, t := range tasks {
		if t.Service == old.Service && t.Slot == old.Slot && t.TaskID != old.TaskID && t.Node != "" && t.Node != e.Node &&
			(t.DesiredState == "ready" || t.DesiredState == "running") {
			repl = append(repl, t)
		}
	}
	if len(repl) == 0 {
		return release(fmt.Sprintf("no replacement task of %s slot %d is assigned to another node", old.Service, old.Slot))
	}
	sort.Slice(repl, func(i, j int) bool { return repl[i].CreatedAt.After(repl[j].CreatedAt) })
	return heldAction{Migrate: true, Target: repl[0].Node}
}

// drainController handles the agents' drain events (leader only). The translations
// it has staying containers install are recorded in the store, not in its memory
// (xlates.go): when such a container moves in turn its images are rewritten with
// them, also by a leader that took over since.
type drainController struct {
	s     *Service
	sw    DrainSwarm
	addr  func(node string) (string, bool)
	log   *slog.Logger
	mu    sync.Mutex
	busy  map[string]bool      // holds (container@deadline) decided or being decided
	seen  map[string]time.Time // node -> when its drain was last reported (events.DrainSeen)
	wg    sync.WaitGroup
	armed func() // pokes the reconciler (a moved task is armed again on its new node)
}

// drainSwarm is the coordinator's DrainSwarm, if its Stopper is one.
func (s *Service) drainSwarm() (DrainSwarm, bool) {
	sw, ok := s.cfg.Stopper.(DrainSwarm)
	return sw, ok
}

// runDrain serves drain events until ctx ends (without a swarm manager: not at all).
func (s *Service) runDrain(ctx context.Context) {
	sw, ok := s.drainSwarm()
	if !ok {
		return
	}
	d := &drainController{s: s, sw: sw, addr: s.WorkerAddr, log: s.log.With("component", "drain"), busy: map[string]bool{}}
	if s.rec != nil {
		d.armed = s.rec.poke
	}
	sub, err := s.cfg.Bus.Subscribe(node.DrainEventSubject, func(m *bus.Msg) {
		var e node.DrainEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			d.log.Warn("dropping an undecodable drain event", "err", err)
			return
		}
		if e.What == node.DrainFailed {
			d.failed(ctx, e)
			return
		}
		if e.What != node.DrainHeld {
			return
		}
		// One decision per hold: agents report an undecided hold again every second,
		// and a report may cross the release.
		k := e.ContainerID + "@" + e.Deadline.String()
		d.mu.Lock()
		if d.busy[k] {
			d.mu.Unlock()
			return
		}
		d.busy[k] = true
		d.wg.Add(1)
		d.mu.Unlock()
		go func() {
			defer d.wg.Done()
			d.handle(ctx, e)
			time.AfterFunc(time.Until(e.Deadline)+time.Second, func() {
				d.mu.Lock()
				delete(d.busy, k)
				d.mu.Unlock()
			})
		}()
	})
	if err != nil {
		s.log.Error("cannot subscribe to the agents' drain events: held stops proceed at their deadline", "err", err)
		return
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	d.wg.Wait()
}

// handle decides one held stop and carries the decision out before its deadline.
func (d *drainController) handle(ctx context.Context, e node.DrainEvent) {
	parent := ctx // unlockReplacement runs past the hold's deadline
	ctx, cancel := context.WithDeadline(ctx, e.Deadline)
	defer cancel()
	log := d.log.With("node", e.Node, "container", e.Name, "service", e.Service, "slot", e.Slot)
	start := time.Now()
	left := func() time.Duration { return max(time.Until(e.Deadline), 100*time.Millisecond) }
	ev := events.Event{Stack: e.Stack, Node: e.Node, Service: e.Service, Slot: e.Slot, Container: e.Name}
	emit := func(kind string, f func(*events.Event)) {
		x := ev
		x.Kind = kind
		if f != nil {
			f(&x)
		}
		d.s.emit(ctx, x)
	}
	emit(events.TaskHeld, func(x *events.Event) { x.Deadline = e.Deadline })
	release := func(why string) {
		emit(events.Released, func(x *events.Event) { x.Reason = why })
		if _, err := nodecall.Ask[node.HeldReply](context.WithoutCancel(ctx), d.s.cfg.Bus, node.HeldSubject(e.Node),
			node.HeldRequest{Container: e.ContainerID, Release: true, Reason: why}, 5*time.Second); err != nil {
			log.Warn("could not release a held stop; it proceeds at its deadline", "err", err, "deadline", e.Deadline)
		}
	}
	avail, err := d.sw.NodeAvailability(ctx, e.Node)
	if err != nil {
		log.Warn("cannot read the node's availability: the held stop proceeds (fresh restart)", "err", err)
		release("the coordinator could not read the node's availability: " + err.Error())
		return
	}
	tasks, err := d.sw.Tasks(ctx, e.Stack)
	if err != nil {
		log.Warn("cannot list the stack's tasks: the held stop proceeds (fresh restart)", "stack", e.Stack, "err", err)
		release("the coordinator could not list the stack's tasks: " + err.Error())
		return
	}
	if avail == stack.AvailabilityDrain && d.firstSeen(e.Node, time.Now()) {
		d.s.emit(ctx, events.Event{Kind: events.DrainSeen, Node: e.Node})
	}
	a := decideHeld(e, avail, tasks, d.s.moves.has(taskKey(e.Stack, e.Service, e.Slot)))
	if !a.Migrate {
		log.Info("held stop released: not a drain to migrate", "reason", a.Reason)
		release(a.Reason)
		return
	}
	to, ok := d.addr(a.Target)
	if !ok {
		why := fmt.Sprintf("node %s, where swarm put the replacement, has no live worker", a.Target)
		log.Warn("held stop released: "+why+" (fresh restart)", "target", a.Target)
		release(why)
		return
	}
	// How the set reaches the replacement's node: the migration's copy mode for a
	// move, else the stack's swarmckpt.migration label; direct only where both nodes'
	// workers can (node.FeatureDrainDirect), else streamed with the reason said.
	want, moving := d.s.moves.copyOf(taskKey(e.Stack, e.Service, e.Slot))
	if !moving {
		want = d.s.stackMigrationLabel(ctx, e.Stack, log)
	}
	var live []store.Worker
	if d.s.live != nil && (want == api.CopyDirect || want == api.CopyPostCopy) {
		live = d.s.live.live()
	}
	direct, copyNote := heldCopy(want, live, e.Node, a.Target)
	if copyNote != "" {
		log.Warn("drain: "+copyNote, "target", a.Target)
	}
	copyMode := api.CopyStreamed
	if direct {
		copyMode = api.CopyDirect
	}
	// What the held container's namespace translates (peers that moved before it),
	// from its worker while the container still runs (a checkpoint with exit ends it,
	// and the worker forgets its translations then): its sockets know those peers by
	// their old addresses, which its images are rewritten from. The store's records
	// are the fallback (xlates.go).
	kept, keptOK := d.s.keptTranslations(ctx, e.Node, e.ContainerID, log)
	set, into := e.Set, e.Into
	if set != "" {
		// Checkpointed already, by a leader that died before it placed the set and
		// released the stop (the agent reports a held stop until it is released): the
		// state is in the set; it goes on from there.
		log.Info("drain: resuming a drain a previous leader checkpointed: sending and placing its set for the replacement", "target", a.Target, "set", set, "left", time.Until(e.Deadline).Round(time.Millisecond))
	} else {
		set = fmt.Sprintf("drain.%s.%d.%d", e.Service, e.Slot, time.Now().UnixMilli())
		if direct {
			into = to // dumped straight into the replacement's node: nothing to send
		}
		log.Info("drain: checkpointing the held task for its replacement", "target", a.Target, "set", set, "copy", copyMode, "left", time.Until(e.Deadline).Round(time.Millisecond))
		// A failed checkpoint releases the stop on the node (the container runs on, then
		// stops as swarm asked); a direct one leaves nothing on the target.
		if _, err := nodecall.Ask[node.HeldReply](ctx, d.s.cfg.Bus, node.HeldSubject(e.Node), node.HeldRequest{Container: e.ContainerID, Set: set, Into: into}, left()); err != nil {
			if timedOut(err, e.Deadline, time.Now()) {
				emit(events.HoldTimedOut, func(x *events.Event) { x.Reason = holdTimeoutReason(e, err) })
				log.Warn("drain: the checkpoint did not finish within the hold budget: the stop went on as swarm's (stop signal, SIGKILL at stop_grace_period); swarm restarts the task fresh", "err", err)
				return
			}
			if errors.Is(err, node.ErrNotFound) {
				log.Info("drain: the stop is no longer held (decided, or its deadline passed), or the container has no arming record there: its stop proceeds", "err", err)
				return
			}
			emit(events.Released, func(x *events.Event) { x.Reason = "checkpoint failed, swarm restarts the task fresh: " + err.Error() })
			log.Error("drain: checkpoint of the held task failed: swarm restarts it fresh", "err", err)
			return
		}
	}
	tCkpt := time.Now()
	if into != "" {
		copyMode = api.CopyDirect // also a dead leader's direct checkpoint
	}
	emit(events.Checkpointed, func(x *events.Event) { x.Set, x.Copy = set, copyMode; x.MS = tCkpt.Sub(start).Milliseconds() })
	// The replacement's new address (drainaddr.go): listed again now, so that the
	// other moving tasks' replacements are in the map too.
	if t2, err := d.sw.Tasks(ctx, e.Stack); err == nil {
		tasks = t2
	}
	readdr := heldAddresses(e, tasks)
	own := kept
	if !keptOK {
		own = d.s.translationsOf(ctx, e.ContainerID, log) // xlates.go
	}
	var dropped [][2]string
	readdr.Map, dropped = withTranslations(readdr.Map, own)
	if len(dropped) > 0 {
		log.Info("drain: address map entries replaced by the held container's translations onto the same new address (its sockets know those peers by the translations' old addresses)", "dropped", dropped)
	}
	if len(readdr.Missing) > 0 {
		log.Warn("drain: a moving task's replacement has no address yet: connections to it are closed at its restore", "slots", readdr.Missing)
	}
	translated := 0
	err = func() error {
		switch {
		case into == "":
			// ErrSetExists: a dead leader sent it already.
			if _, err := nodecall.Ask[node.SendReply](ctx, d.s.cfg.Bus, node.SendSubject(e.Node), node.SendRequest{Set: set, To: to}, left()); err != nil && !errors.Is(err, node.ErrSetExists) {
				return fmt.Errorf("send set %s to %s: %w", set, a.Target, err)
			}
		case into != to:
			// A dead leader dumped it into a node swarm no longer places the
			// replacement on: the set stays there, its only copy.
			return fmt.Errorf("set %s was dumped straight into the worker at %s, but swarm placed the replacement on %s (%s)", set, into, a.Target, to)
		}
		place := node.PlaceRequest{Set: set, Service: e.Service, Slot: e.Slot}
		if len(readdr.Own) > 0 {
			// The wrapper waits for the map (sent next, before the release). The
			// replacement is restored network-locked: the staying peers' packets,
			// translated to its new address, would otherwise meet its namespace
			// before its sockets are back and be answered with a RST
			// (docs/restore.md "Restoring a set of containers"); unlockReplacement
			// lifts the lock once it runs.
			place.AddressMapFor, place.LockFor = drainMapWait, drainMapWait
		}
		if _, err := nodecall.Ask[node.PlaceReply](ctx, d.s.cfg.Bus, node.PlaceSubject(a.Target), place, left()); err != nil {
			return fmt.Errorf("place set %s on %s for %s slot %d: %w", set, a.Target, e.Service, e.Slot, err)
		}
		if len(readdr.Own) == 0 {
			return nil
		}
		if _, err := nodecall.Ask[node.AddressMapReply](ctx, d.s.cfg.Bus, node.AddressMapSubject(a.Target),
			node.AddressMapRequest{Service: e.Service, Slot: e.Slot, Addresses: readdr.Map}, left()); err != nil {
			return fmt.Errorf("address map of set %s on %s for %s slot %d: %w", set, a.Target, e.Service, e.Slot, err)
		}
		translated = d.translatePeers(ctx, e.Stack, readdr, left(), log)
		return nil
	}()
	if err != nil {
		// The container is gone (dumped with exit); its set stays where it is.
		where := "the node " + e.Node
		if into != "" {
			where = "the worker at " + into + " (copy direct: its only copy)"
			if into == to {
				where = "node " + a.Target + " (copy direct: its only copy)"
			}
		}
		log.Error("drain: the task was checkpointed but its set could not be placed for the replacement: swarm starts it fresh; the state is kept in the set on "+where,
			"set", set, "err", err)
		release("checkpointed into set " + set + " but not placed: " + err.Error() + "; swarm starts the task fresh; the set is kept on " + where)
		return
	}
	d.releaseQuiet(ctx, e, "checkpointed into set "+set+", placed on "+a.Target, log)
	// Its translations stay behind with its namespace; its replacement's sockets
	// were rewritten with them.
	d.s.forgetTranslations(context.WithoutCancel(ctx), e.ContainerID, own, log) // xlates.go
	emit(events.Restored, func(x *events.Event) {
		x.Set, x.Target, x.MS, x.Copy = set, a.Target, time.Since(start).Milliseconds(), copyMode
		x.Reason = "set placed for swarm's replacement task; the target's runtime restores it when swarm starts it"
		if copyNote != "" {
			x.Reason += "; " + copyNote
		}
		if len(readdr.Own) > 0 {
			x.Reason += fmt.Sprintf(" with the address map %v; %d staying containers translate its old address", readdr.Own, translated)
		}
	})
	log.Info("drain: held task checkpointed and placed for its replacement", "target", a.Target, "set", set,
		"addresses", readdr.Own, "map", readdr.Map, "translating_peers", translated,
		"checkpoint_s", tCkpt.Sub(start).Seconds(), "seconds", time.Since(start).Seconds())
	if len(readdr.Own) > 0 {
		d.unlockReplacement(parent, e, a.Target, log)
	}
	if d.armed != nil {
		// The replacement runs about a second after the release: a policy pass then
		// arms it on its new node (pokes after ctx ended are dropped by the reconciler).
		for _, after := range []time.Duration{0, 2 * time.Second, 5 * time.Second} {
			time.AfterFunc(after, d.armed)
		}
	}
}

// heldCopy decides (pure) whether a held stop's set is dumped straight into the
// replacement's node: want is the copy mode asked (a migration's, or the stack's
// swarmckpt.migration label; post-copy cannot apply to a held stop, whose container
// swarm ends, and means direct there), live the live workers, source the held task's
// node and target the replacement's. Direct needs both to announce
// node.FeatureDrainDirect; otherwise the copy is streamed and note says why.
func heldCopy(want string, live []store.Worker, source, target string) (direct bool, note string) {
	if want != api.CopyDirect && want != api.CopyPostCopy {
		return false, ""
	}
	var why []string
	if want == api.CopyPostCopy {
		why = append(why, "post-copy cannot apply to a held stop (swarm ends the source, which a post-copy restore fetches its pages from): direct")
	}
	for _, n := range []string{source, target} {
		i := slices.IndexFunc(live, func(w store.Worker) bool { return w.Node == n })
		if i < 0 || !live[i].Has(node.FeatureDrainDirect) {
			why = append(why, fmt.Sprintf("copy %s asked, but node %s's worker does not announce %q (upgrade swarmckpt there): copied streamed", api.CopyDirect, n, node.FeatureDrainDirect))
			return false, strings.Join(why, "; ")
		}
	}
	return true, strings.Join(why, "; ")
}

// stackMigrationLabel is stack's swarmckpt.migration label ("" without one, or when
// the labels cannot be read: streamed).
func (s *Service) stackMigrationLabel(ctx context.Context, stackName string, log *slog.Logger) string {
	src, ok := s.policySource()
	if !ok {
		return ""
	}
	labels, err := src.ServiceLabels(ctx)
	if err != nil {
		log.Warn("cannot read the stack's labels for its migration copy mode: copied streamed", "stack", stackName, "err", err)
		return ""
	}
	var svcs []policy.Service
	for _, l := range labels {
		if l.Stack == stackName {
			svcs = append(svcs, policy.Service{Name: l.Service, Labels: l.Labels})
		}
	}
	if p, _ := policy.Derive(stackName, svcs); p != nil {
		return p.Migration
	}
	return ""
}

// releaseQuiet releases a held stop after a migration (no Released event).
func (d *drainController) releaseQuiet(ctx context.Context, e node.DrainEvent, why string, log *slog.Logger) {
	if _, err := nodecall.Ask[node.HeldReply](context.WithoutCancel(ctx), d.s.cfg.Bus, node.HeldSubject(e.Node),
		node.HeldRequest{Container: e.ContainerID, Release: true, Reason: why}, 5*time.Second); err != nil {
		log.Warn("could not release a held stop; it proceeds at its deadline", "err", err, "deadline", e.Deadline)
	}
}

// firstSeen reports whether node's drain is news at now (not reported in the last
// minute: swarm's own limit on a drain's stops).
func (d *drainController) firstSeen(nodeName string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]time.Time{}
	}
	if last, ok := d.seen[nodeName]; ok && now.Sub(last) < time.Minute {
		return false
	}
	d.seen[nodeName] = now
	return true
}

// failed handles an agent's report of a hold that ended without a verdict (its
// deadline passed: the wrapper passed the stop on by itself).
func (d *drainController) failed(ctx context.Context, e node.DrainEvent) {
	d.s.emit(ctx, events.Event{Kind: events.HoldTimedOut, Stack: e.Stack, Node: e.Node, Service: e.Service, Slot: e.Slot,
		Container: e.Name, Deadline: e.Deadline, Reason: e.Reason})
}

// timedOut reports whether a checkpoint's error err means the hold's budget ran out
// (its deadline passed, or the request was cut by it).
func timedOut(err error, deadline, now time.Time) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bus.ErrTimeout) || !now.Before(deadline)
}

// holdTimeoutReason is the event's reason for a hold whose checkpoint did not finish.
func holdTimeoutReason(e node.DrainEvent, err error) string {
	return fmt.Sprintf("the checkpoint did not finish before the hold's deadline %s (%v): the stop went on as swarm's, stop signal then SIGKILL at stop_grace_period; swarm restarts the task fresh",
		e.Deadline.UTC().Format(time.RFC3339), err)
}

// migratesOnDrain reports whether p (nil: no swarmckpt label) is an enabled policy
// labelled swarmckpt.on-drain: migrate.
func migratesOnDrain(p *policy.Policy) bool {
	return p != nil && p.Enabled && p.OnDrain == policy.OnDrainMigrate
}

// drainArm arms the running tasks of a stack labelled on-drain migrate (an enabled,
// valid policy), and disarms what was armed of a stack that is not (any more).
func (r *reconciler) drainArm(ctx context.Context, stackName string, services []policy.Service) {
	if p, err := policy.Derive(stackName, services); err == nil && migratesOnDrain(p) {
		r.armTasks(ctx, stackName)
		return
	}
	for _, st := range r.armedStack {
		if st == stackName {
			r.disarmStack(ctx, stackName)
			return
		}
	}
}

// armTasks arms, on their nodes, the running tasks of stack (policy on-drain
// migrate) not armed yet (r.armed), and forgets those that are gone. Errors are
// logged: the next pass tries again.
func (r *reconciler) armTasks(ctx context.Context, stackName string) {
	sw, ok := r.s.drainSwarm()
	if !ok {
		return
	}
	tasks, err := sw.Tasks(ctx, stackName)
	if err != nil {
		r.log.Warn("cannot list the stack's tasks to arm them for drains", "stack", stackName, "err", err)
		return
	}
	byNode := map[string][]node.ArmEntry{}
	running := map[string]bool{}
	for _, t := range tasks {
		if t.DesiredState != "running" || t.State != "running" || t.ContainerID == "" || t.Node == "" {
			continue
		}
		running[t.ContainerID] = true
		if r.armed[t.ContainerID] {
			continue
		}
		entry, ok := armEntry(stackName, t)
		if !ok {
			if r.unarmable == nil {
				r.unarmable = map[string]bool{}
			}
			if !r.unarmable[t.ContainerID] {
				r.unarmable[t.ContainerID] = true
				r.log.Warn("task not armed for drains: its stop_grace_period leaves no time to checkpoint it; give it more (e.g. 10s)",
					"stack", stackName, "service", t.Service, "slot", t.Slot, "stop_grace_period", t.StopGracePeriod)
			}
			continue
		}
		byNode[t.Node] = append(byNode[t.Node], entry)
	}
	for c, st := range r.armedStack {
		if st == stackName && !running[c] {
			delete(r.armed, c)
			delete(r.armedStack, c)
		}
	}
	for n, entries := range byNode {
		rep, err := nodecall.Ask[node.ArmReply](ctx, r.s.cfg.Bus, node.ArmSubject(n), node.ArmRequest{Arm: entries}, 5*time.Second)
		if err != nil {
			r.log.Warn("cannot arm the stack's tasks for drains on a node; retrying next pass", "stack", stackName, "node", n, "err", err)
			continue
		}
		for _, e := range entries {
			if why, failed := rep.Failed[e.Container]; failed {
				r.log.Warn("cannot arm a task for drains; retrying next pass", "stack", stackName, "node", n, "container", e.Container, "err", why)
				continue
			}
			r.armed[e.Container] = true
			r.armedStack[e.Container] = stackName
		}
		r.log.Info("tasks armed for drains", "stack", stackName, "node", n, "tasks", len(entries)-len(rep.Failed))
	}
}

// disarmStack disarms what this coordinator armed of stack (its label went away).
func (r *reconciler) disarmStack(ctx context.Context, stackName string) {
	sw, ok := r.s.drainSwarm()
	if !ok {
		return
	}
	tasks, err := sw.Tasks(ctx, stackName)
	if err != nil {
		r.log.Warn("cannot list the stack's tasks to disarm them", "stack", stackName, "err", err)
		return
	}
	byNode := map[string][]string{}
	for _, t := range tasks {
		if r.armed[t.ContainerID] && t.Node != "" {
			byNode[t.Node] = append(byNode[t.Node], t.ContainerID)
		}
	}
	var errs []error
	for n, cs := range byNode {
		if _, err := nodecall.Ask[node.ArmReply](ctx, r.s.cfg.Bus, node.ArmSubject(n), node.ArmRequest{Disarm: cs}, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n, err))
			continue
		}
		for _, c := range cs {
			delete(r.armed, c)
			delete(r.armedStack, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Warn("cannot disarm the stack's tasks; retrying next pass", "stack", stackName, "err", err)
	}
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/nodecall"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// `swarmckpt node drain NODE` for swarm-mode stacks (docs/drain.md): the drain hold
// path, as a plain `docker node update --availability drain NODE` takes, so that only
// the tasks on NODE stop. Their tasks on NODE are armed now (idempotent: the
// reconciler arms them too), NODE is set to drain, and the drain controller's events
// (restored, released, hold-timed-out) say what became of each; the replacement seen
// running ends its downtime.

// holdWaitPoll is how often the replacements' state is read while waiting.
const holdWaitPoll = 200 * time.Millisecond

// heldTask is a labelled swarm-mode task on the drained node, followed to its end.
type heldTask struct {
	stack    string
	task     stack.Task
	budget   time.Duration
	heldAt   time.Time
	restored *events.Event // the controller placed its set for the replacement
	fresh    string        // why it was not moved with its memory ("" = not known yet)
	done     *api.NodeTask
}

func taskKey(stackName, service string, slot int) string {
	return fmt.Sprintf("%s/%s.%d", stackName, service, slot)
}

// armEntry is the arming of running task t of stackName (policy on-drain migrate);
// false: its stop_grace_period leaves no time for a checkpoint.
func armEntry(stackName string, t stack.Task) (node.ArmEntry, bool) {
	budget := drainBudget(t.StopGracePeriod)
	if budget < minDrainBudget {
		return node.ArmEntry{}, false
	}
	grace := t.StopGracePeriod
	if grace <= 0 {
		grace = defaultGracePeriod
	}
	return node.ArmEntry{Container: t.ContainerID, Budget: budget, Grace: grace,
		Policy: policy.OnDrainMigrate, Stack: stackName, Service: t.Service, Slot: t.Slot}, true
}

// drainHeld drains req.Node for the swarm-mode stacks stacks (labelled on-drain
// migrate) through the drain hold: it arms their tasks on the node, sets the node to
// drain, and waits for each task's replacement to run restored from its checkpoint.
// The node is drained when it returns without error or with a per-task failure
// (res.Availability says which); the migrations are appended to res.Migrated.
func (s *Service) drainHeld(ctx context.Context, sw NodeSwarm, req api.NodeRequest, stacks []drainStack, res *api.NodeResult, progress func(phase, msg string)) error {
	names := make([]string, 0, len(stacks))
	for _, m := range stacks {
		names = append(names, m.Stack)
	}
	held, err := s.armHeld(ctx, sw, names, func(t stack.Task) bool { return t.Node == req.Node }, policy.OnDrainMigrate, progress)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return api.Errorf(ae.Code, "node %s not drained: %s", req.Node, ae.Message)
		}
		return api.Errorf(api.CodeFailed, "node %s not drained: %v", req.Node, err)
	}
	// The other nodes keep the held tasks' networks until their replacements run
	// (drainkeep.go): a node joining a network at the replacement's assignment can
	// wait 30 s for the drained node (docs/drain.md "Network keepers of the drain hold").
	id := req.ID
	if id == "" {
		id = NewID("drain-"+req.Node, time.Now())
	}
	defer s.keepNetworks(ctx, sw, id, names, func(t stack.Task) bool { return t.Node == req.Node }, req.Node, "")()
	start := time.Now()
	trigger := func() error {
		if err := sw.SetNodeAvailability(ctx, req.Node, stack.AvailabilityDrain); err != nil {
			return api.Errorf(api.CodeFailed, "node %s not drained: set it to drain: %v; run 'docker node update --availability drain %s'", req.Node, err, req.Node)
		}
		res.Availability = stack.AvailabilityDrain
		progress("draining", fmt.Sprintf("node %s set to drain: swarm stops its tasks; %d held tasks to move", req.Node, len(held)))
		return nil
	}
	if err := s.awaitHeld(ctx, sw, held, trigger, "the drain", progress); err != nil {
		return err
	}
	// One entry per stack, its tasks in order.
	var failed []string
	for _, m := range stacks {
		nm := api.NodeMigration{Stack: m.Stack, MS: time.Since(start).Milliseconds()}
		for _, h := range held {
			if h.stack != m.Stack {
				continue
			}
			nm.Tasks = append(nm.Tasks, *h.done)
			nm.Moved++
			if h.done.Fresh {
				failed = append(failed, fmt.Sprintf("%s slot %d (%s)", h.task.Service, h.task.Slot, h.done.Reason))
			}
		}
		res.Migrated = append(res.Migrated, nm)
		s.emit(ctx, events.Event{Kind: events.Migrated, Node: req.Node, Stack: m.Stack, MS: nm.MS,
			Reason: fmt.Sprintf("%d tasks on %s moved by the drain hold", nm.Moved, req.Node)})
	}
	if len(failed) > 0 {
		return api.Errorf(api.CodeFailed, "node %s is drained, but %d labelled tasks were not moved with their memory (swarm restarts them fresh): %s; 'swarmckpt events' says why",
			req.Node, len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// armHeld arms, for the drain hold, the running tasks of the stacks that moving
// selects, recording pol as their policy (policy.OnDrainMigrate, or a migration's
// movePolicy), grouped by node. A task whose stop_grace_period leaves no time for a
// checkpoint refuses the whole move (nothing is armed then).
func (s *Service) armHeld(ctx context.Context, sw DrainSwarm, stacks []string, moving func(stack.Task) bool, pol string, progress func(phase, msg string)) ([]*heldTask, error) {
	var held []*heldTask
	byNode := map[string][]node.ArmEntry{}
	for _, st := range stacks {
		tasks, err := sw.Tasks(ctx, st)
		if err != nil {
			return nil, api.Errorf(api.CodeFailed, "list stack %s's tasks: %v", st, err)
		}
		for _, t := range tasks {
			if t.DesiredState != "running" || t.State != "running" || t.ContainerID == "" || t.Node == "" || !moving(t) {
				continue
			}
			e, ok := armEntry(st, t)
			if !ok {
				return nil, api.Errorf(api.CodeFailed, "task %s slot %d of stack %s has stop_grace_period %s, which leaves no time to checkpoint it: give it more (e.g. stop_grace_period: 10s) or use --mode exact",
					t.Service, t.Slot, st, t.StopGracePeriod)
			}
			e.Policy = pol
			byNode[t.Node] = append(byNode[t.Node], e)
			held = append(held, &heldTask{stack: st, task: t, budget: e.Budget})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		entries := byNode[n]
		rep, err := nodecall.Ask[node.ArmReply](ctx, s.cfg.Bus, node.ArmSubject(n), node.ArmRequest{Arm: entries}, 5*time.Second)
		if err != nil {
			return nil, api.Errorf(api.CodeFailed, "arm the tasks on %s for the drain hold: %v; is the agent on %s up? (swarmckpt status)", n, err, n)
		}
		if len(rep.Failed) > 0 {
			var why []string
			for c, w := range rep.Failed {
				why = append(why, c+": "+w)
			}
			slices.Sort(why)
			return nil, api.Errorf(api.CodeFailed, "arming tasks on %s for the drain hold failed (%s); fix that and try again", n, strings.Join(why, "; "))
		}
		progress("armed", fmt.Sprintf("%d swarm-mode tasks on %s armed: their stops are held and checkpointed", len(entries), n))
	}
	return held, nil
}

// awaitHeld starts the stops of held (trigger: a node drain, or a placement
// constraint swarm follows) and waits for each task's fate: its replacement running
// restored from its checkpoint, or released fresh (h.done says which). what names the
// stop in the messages ("the drain"). It returns trigger's error, or ctx's.
func (s *Service) awaitHeld(ctx context.Context, sw DrainSwarm, held []*heldTask, trigger func() error, what string, progress func(phase, msg string)) error {
	byKey := map[string]*heldTask{}
	var budget time.Duration
	for _, h := range held {
		byKey[taskKey(h.stack, h.task.Service, h.task.Slot)] = h
		budget = max(budget, h.budget)
	}
	var mu sync.Mutex
	changed := make(chan struct{}, 1)
	sub, err := events.Follow(s.cfg.Bus, func(e events.Event) {
		mu.Lock()
		defer mu.Unlock()
		h := byKey[taskKey(e.Stack, e.Service, e.Slot)]
		if h == nil || h.done != nil || e.Node != h.task.Node {
			return
		}
		switch e.Kind {
		case events.TaskHeld:
			if h.heldAt.IsZero() {
				h.heldAt = e.At
				progress("held", fmt.Sprintf("%s slot %d: stop held, checkpointing", h.task.Service, h.task.Slot))
			}
		case events.Checkpointed:
			progress("checkpointed", fmt.Sprintf("%s slot %d: checkpointed into %s in %dms", h.task.Service, h.task.Slot, e.Set, e.MS))
		case events.Restored:
			x := e
			h.restored = &x
			progress("placed", fmt.Sprintf("%s slot %d: set %s placed on %s for its replacement", h.task.Service, h.task.Slot, e.Set, e.Target))
		case events.Released, events.HoldTimedOut:
			h.fresh = e.Kind + ": " + e.Reason
		default:
			return
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}, nil)
	if err != nil {
		return api.Errorf(api.CodeFailed, "nothing was stopped: follow the drain controller's events: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	start := time.Now()
	if err := trigger(); err != nil {
		return err
	}
	// Bound: swarm stops the tasks within seconds; each hold ends by its budget; the
	// replacement's wrapper waits up to drainMapWait for its map and lock.
	deadline := start.Add(budget + drainMapWait + 30*time.Second)
	tick := time.NewTicker(holdWaitPoll)
	defer tick.Stop()
	lastNote := time.Now()
	for {
		mu.Lock()
		var pending []*heldTask
		for _, h := range held {
			if h.done == nil {
				pending = append(pending, h)
			}
		}
		mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			mu.Lock()
			for _, h := range pending {
				h.done = &api.NodeTask{Service: h.task.Service, Slot: h.task.Slot, Fresh: true,
					Reason: fmt.Sprintf("no restored replacement seen within %s of %s", deadline.Sub(start).Round(time.Second), what)}
			}
			mu.Unlock()
			return nil
		}
		s.checkHeld(ctx, sw, pending, &mu, start, progress)
		if time.Since(lastNote) >= 5*time.Second {
			lastNote = time.Now()
			var names []string
			mu.Lock()
			for _, h := range pending {
				if h.done == nil {
					names = append(names, fmt.Sprintf("%s.%d", h.task.Service, h.task.Slot))
				}
			}
			mu.Unlock()
			if len(names) > 0 {
				progress("waiting", fmt.Sprintf("%.0fs: waiting for %s", time.Since(start).Seconds(), strings.Join(names, ", ")))
			}
		}
		select {
		case <-tick.C:
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// checkHeld ends, in pending, the tasks whose fate is known: released fresh, or
// placed with their replacement now seen running.
func (s *Service) checkHeld(ctx context.Context, sw DrainSwarm, pending []*heldTask, mu *sync.Mutex, start time.Time, progress func(phase, msg string)) {
	tasksOf := map[string][]stack.Task{}
	for _, h := range pending {
		mu.Lock()
		restored, fresh := h.restored, h.fresh
		mu.Unlock()
		if fresh != "" && restored == nil {
			mu.Lock()
			h.done = &api.NodeTask{Service: h.task.Service, Slot: h.task.Slot, Fresh: true, Reason: fresh}
			mu.Unlock()
			progress("fresh", fmt.Sprintf("%s slot %d was NOT moved with its memory: %s", h.task.Service, h.task.Slot, fresh))
			continue
		}
		if restored == nil {
			continue
		}
		tasks, ok := tasksOf[h.stack]
		if !ok {
			var err error
			if tasks, err = sw.Tasks(ctx, h.stack); err != nil {
				s.log.Debug("node drain: cannot list the stack's tasks to see its replacements; trying again", "stack", h.stack, "err", err)
				continue
			}
			tasksOf[h.stack] = tasks
		}
		for _, t := range tasks {
			if t.Service != h.task.Service || t.Slot != h.task.Slot || t.Node != restored.Target || t.Node == h.task.Node ||
				t.DesiredState != "running" || t.State != "running" {
				continue
			}
			from := h.heldAt
			if from.IsZero() {
				from = start
			}
			nt := &api.NodeTask{Service: h.task.Service, Slot: h.task.Slot, Target: t.Node, Set: restored.Set, Copy: restored.Copy,
				DowntimeMS: time.Since(from).Milliseconds()}
			mu.Lock()
			h.done = nt
			mu.Unlock()
			progress("restored", fmt.Sprintf("%s slot %d runs on %s restored from %s: down %dms", h.task.Service, h.task.Slot, t.Node, restored.Set, nt.DowntimeMS))
			break
		}
	}
}

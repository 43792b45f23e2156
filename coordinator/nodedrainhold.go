package coordinator

import (
	"context"
	"fmt"
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
	var held []*heldTask
	var entries []node.ArmEntry
	for _, m := range stacks {
		tasks, err := sw.Tasks(ctx, m.Stack)
		if err != nil {
			return api.Errorf(api.CodeFailed, "node %s not drained: list stack %s's tasks: %v", req.Node, m.Stack, err)
		}
		for _, t := range tasks {
			if t.Node != req.Node || t.DesiredState != "running" || t.State != "running" || t.ContainerID == "" {
				continue
			}
			e, ok := armEntry(m.Stack, t)
			if !ok {
				return api.Errorf(api.CodeFailed, "node %s not drained: task %s slot %d of stack %s has stop_grace_period %s, which leaves no time to checkpoint it: give it more (e.g. stop_grace_period: 10s) or drain with --mode exact",
					req.Node, t.Service, t.Slot, m.Stack, t.StopGracePeriod)
			}
			entries = append(entries, e)
			held = append(held, &heldTask{stack: m.Stack, task: t, budget: e.Budget})
		}
	}
	if len(entries) > 0 {
		rep, err := nodecall.Ask[node.ArmReply](ctx, s.cfg.Bus, node.ArmSubject(req.Node), node.ArmRequest{Arm: entries}, 5*time.Second)
		if err != nil {
			return api.Errorf(api.CodeFailed, "node %s not drained: arm the labelled tasks there for the drain hold: %v; is the agent on %s up? (swarmckpt status)", req.Node, err, req.Node)
		}
		if len(rep.Failed) > 0 {
			var why []string
			for c, w := range rep.Failed {
				why = append(why, c+": "+w)
			}
			slices.Sort(why)
			return api.Errorf(api.CodeFailed, "node %s not drained: arming tasks for the drain hold failed (%s); fix that and run 'swarmckpt node drain %s' again",
				req.Node, strings.Join(why, "; "), req.Node)
		}
		progress("armed", fmt.Sprintf("%d labelled swarm-mode tasks on %s armed: their stops are held and checkpointed", len(entries), req.Node))
	}
	byKey := map[string]*heldTask{}
	var budget time.Duration
	for _, h := range held {
		byKey[taskKey(h.stack, h.task.Service, h.task.Slot)] = h
		budget = max(budget, h.budget)
	}
	var mu sync.Mutex
	changed := make(chan struct{}, 1)
	sub, err := events.Follow(s.cfg.Bus, func(e events.Event) {
		if e.Node != req.Node {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		h := byKey[taskKey(e.Stack, e.Service, e.Slot)]
		if h == nil || h.done != nil {
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
		return api.Errorf(api.CodeFailed, "node %s not drained: follow the drain controller's events: %v", req.Node, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	start := time.Now()
	if err := sw.SetNodeAvailability(ctx, req.Node, stack.AvailabilityDrain); err != nil {
		return api.Errorf(api.CodeFailed, "node %s not drained: set it to drain: %v; run 'docker node update --availability drain %s'", req.Node, err, req.Node)
	}
	res.Availability = stack.AvailabilityDrain
	progress("draining", fmt.Sprintf("node %s set to drain: swarm stops its tasks; %d held tasks to move", req.Node, len(held)))

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
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			mu.Lock()
			for _, h := range pending {
				h.done = &api.NodeTask{Service: h.task.Service, Slot: h.task.Slot, Fresh: true,
					Reason: fmt.Sprintf("no restored replacement seen within %s of the drain", deadline.Sub(start).Round(time.Second))}
			}
			mu.Unlock()
			break
		}
		s.checkHeld(ctx, sw, req.Node, pending, &mu, start, progress)
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

// checkHeld ends, in pending, the tasks whose fate is known: released fresh, or
// placed with their replacement now seen running.
func (s *Service) checkHeld(ctx context.Context, sw NodeSwarm, nodeName string, pending []*heldTask, mu *sync.Mutex, start time.Time, progress func(phase, msg string)) {
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
			if t.Service != h.task.Service || t.Slot != h.task.Slot || t.Node != restored.Target || t.Node == nodeName ||
				t.DesiredState != "running" || t.State != "running" {
				continue
			}
			from := h.heldAt
			if from.IsZero() {
				from = start
			}
			nt := &api.NodeTask{Service: h.task.Service, Slot: h.task.Slot, Target: t.Node, Set: restored.Set,
				DowntimeMS: time.Since(from).Milliseconds()}
			mu.Lock()
			h.done = nt
			mu.Unlock()
			progress("restored", fmt.Sprintf("%s slot %d runs on %s restored from %s: down %dms", h.task.Service, h.task.Slot, t.Node, restored.Set, nt.DowntimeMS))
			break
		}
	}
}

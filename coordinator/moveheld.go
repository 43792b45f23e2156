package coordinator

import (
	"cmp"
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

// A swarm-mode migration of only the moving tasks (`migrate --mode swarm --from NODE`
// or `--to NODE` without --whole-stack; docs/drain.md "Partial migration in swarm
// mode"): the stack's moving tasks are armed for the drain hold, then swarm is made
// to stop exactly them with a placement constraint on their services
// (node.hostname!=FROM, or node.hostname==TO): swarm replaces only the tasks whose
// node no longer satisfies their service's constraints (swarmkit's IsTaskDirty:
// a change of the placement constraints alone leaves a task whose node still
// satisfies them). Each stop is held, checkpointed, and its set placed for swarm's
// replacement, as in a drain (drain.go); the staying tasks never stop, and their
// connections to a moved task follow its new address (drainaddr.go). Once every moved
// task runs restored (or was released fresh), the constraint is removed again (no
// task restarts for that: every one's node satisfies the services' constraints then).

// movePolicyPrefix is the arming policy of a task moved by a migration (the
// migration's id follows): its held stop is migrated whatever its node's
// availability, and whatever the stack's on-drain label.
const movePolicyPrefix = "move:"

func movePolicy(id string) string { return movePolicyPrefix + id }

// heldMoves are the tasks (taskKey) being moved by migrations, so that the drain
// controller migrates their held stops even if their arming was replaced meanwhile
// (the reconciler arms a labelled stack's tasks with the on-drain policy).
type heldMoves struct {
	mu   sync.Mutex
	m    map[string]string // taskKey -> migration id
	copy map[string]string // migration id -> its copy mode (api.CopyStreamed, api.CopyDirect)
}

func (h *heldMoves) add(id, copyMode string, keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m, h.copy = map[string]string{}, map[string]string{}
	}
	for _, k := range keys {
		h.m[k] = id
	}
	h.copy[id] = copyMode
}

func (h *heldMoves) remove(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.m {
		if v == id {
			delete(h.m, k)
		}
	}
	delete(h.copy, id)
}

func (h *heldMoves) has(key string) bool {
	_, ok := h.copyOf(key)
	return ok
}

// copyOf is the copy mode of the migration moving the task key, if one does.
func (h *heldMoves) copyOf(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.m[key]
	return h.copy[id], ok
}

// ConstraintChanger is a swarm that adds and removes placement constraints on a
// stack's services (stack.Docker, stack.FakeSwarm).
type ConstraintChanger interface {
	stack.ConstraintRemover
	// AddConstraints adds constraints to the placement of the stack's services named
	// in services (those that have them already are not updated).
	AddConstraints(ctx context.Context, stack string, services []string, constraints []string) error
}

// moveConstraint is the placement constraint that makes swarm stop the moving tasks.
func moveConstraint(req api.MigrateRequest) string {
	if req.From != "" {
		return "node.hostname!=" + req.From
	}
	return "node.hostname==" + req.To
}

// movingTask reports whether task t moves in req (on --from, or not on --to).
func movingTask(req api.MigrateRequest, t stack.Task) bool {
	if req.From != "" {
		return t.Node == req.From
	}
	return t.Node != req.To
}

// moveHeld serves a swarm-mode migration of only the moving tasks (restore.Config.
// MoveHeld; the restore package has checked the request, the targets and the
// services' constraints, and holds the stack's lock).
func (s *Service) moveHeld(ctx context.Context, req api.MigrateRequest) (*api.MigrateResult, error) {
	sw, ok := s.drainSwarm()
	cc, ok2 := s.cfg.Stopper.(ConstraintChanger)
	if !ok || !ok2 {
		return nil, api.Errorf(api.CodeFailed, "migrate refused, nothing was changed: this coordinator has no swarm manager to steer (started without --docker); use --whole-stack")
	}
	progress := func(phase, msg string) {
		s.event(ctx, api.Event{ID: req.ID, Phase: phase, Message: msg})
	}
	tasks, err := sw.Tasks(ctx, req.Stack)
	if err != nil {
		return nil, api.Errorf(api.CodeFailed, "migrate refused, nothing was changed: list stack %s's tasks: %v", req.Stack, err)
	}
	// A service with a task that moves and one that stays could not keep the staying
	// one with --to (it would not satisfy node.hostname==TO): every task of a
	// service touched moves then, which is what --to asks.
	services := map[string]bool{}
	var keys []string
	for _, t := range tasks {
		if t.DesiredState == "running" && t.State == "running" && t.Node != "" && movingTask(req, t) {
			services[t.Service] = true
			keys = append(keys, taskKey(req.Stack, t.Service, t.Slot))
		}
	}
	if len(keys) == 0 {
		where := "on " + req.From
		if req.To != "" {
			where = "off " + req.To
		}
		return nil, api.Errorf(api.CodeBadRequest, "migrate refused, nothing was changed: stack %s has no running task %s (docker stack ps %s)", req.Stack, where, req.Stack)
	}
	copyMode := req.Copy
	if copyMode != api.CopyDirect {
		copyMode = api.CopyStreamed // restore.Restores.moveHeld resolved the rest
	}
	s.moves.add(req.ID, copyMode, keys)
	defer s.moves.remove(req.ID)
	held, err := s.armHeld(ctx, sw, []string{req.Stack}, func(t stack.Task) bool { return movingTask(req, t) }, movePolicy(req.ID), progress)
	if err != nil {
		s.rearm(ctx, req.Stack, tasks, req)
		var ae *api.Error
		if errors.As(err, &ae) {
			return nil, api.Errorf(ae.Code, "migrate refused, nothing was changed: %s", ae.Message)
		}
		return nil, api.Errorf(api.CodeFailed, "migrate refused, nothing was changed: %v", err)
	}
	// The nodes that may take the replacements keep the moving tasks' networks until
	// they run (drainkeep.go): a node joining a network at the replacement's
	// assignment can wait 30 s for the leaving node (docs/drain.md).
	defer s.keepNetworks(ctx, sw, req.ID, []string{req.Stack}, func(t stack.Task) bool { return movingTask(req, t) }, req.From, req.To)()
	names := slices.Sorted(maps.Keys(services))
	c := moveConstraint(req)
	start := time.Now()
	trigger := func() error {
		if err := cc.AddConstraints(ctx, req.Stack, names, []string{c}); err != nil {
			s.rearm(ctx, req.Stack, tasks, req)
			// Some services may have taken it: their tasks move (the hold moves them); the
			// others stay. Remove it where it went.
			if rerr := cc.RemoveConstraints(context.WithoutCancel(ctx), req.Stack, names, []string{c}); rerr != nil {
				s.log.Warn("migrate: cannot take the placement constraint off again", "constraint", c, "err", rerr)
			}
			return api.Errorf(api.CodeFailed, "migrate failed: add the placement constraint %s to %v: %v", c, names, err)
		}
		progress("moving", fmt.Sprintf("placement constraint %s added to %s: swarm stops the %d moving tasks, each held and checkpointed for its replacement; the other tasks run on", c, strings.Join(names, ", "), len(held)))
		return nil
	}
	if err := s.awaitHeld(ctx, sw, held, trigger, "the migration", progress); err != nil {
		return nil, err
	}
	// Every moved task runs on a node that satisfies the constraint's removal too:
	// swarm leaves them (IsTaskDirty), and the services are free to come back later.
	if err := cc.RemoveConstraints(context.WithoutCancel(ctx), req.Stack, names, []string{c}); err != nil {
		progress("warning", fmt.Sprintf("the placement constraint %s stays on %v: %v; remove it with docker service update --constraint-rm '%s'", c, names, err, c))
	}
	res := &api.MigrateResult{}
	var failed []string
	for _, h := range held {
		res.Moved = append(res.Moved, *h.done)
		if h.done.Fresh {
			failed = append(failed, fmt.Sprintf("%s slot %d (%s)", h.task.Service, h.task.Slot, h.done.Reason))
		}
	}
	slices.SortFunc(res.Moved, func(a, b api.NodeTask) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(a.Slot, b.Slot))
	})
	s.emit(ctx, events.Event{Kind: events.Migrated, Stack: req.Stack, Node: req.From, MS: time.Since(start).Milliseconds(),
		Reason: fmt.Sprintf("migration %s: %d of %d tasks moved with their memory through the drain hold", req.ID, len(held)-len(failed), len(held))})
	if len(failed) > 0 {
		return res, api.Errorf(api.CodeFailed, "migration %s: %d of %d tasks were not moved with their memory (swarm restarted them fresh): %s; 'swarmckpt events' says why",
			req.ID, len(failed), len(held), strings.Join(failed, "; "))
	}
	return res, nil
}

// rearm gives the moving tasks of stackName back the arming they had before a
// migration that did not start (the on-drain policy of a labelled stack, else none).
func (s *Service) rearm(ctx context.Context, stackName string, tasks []stack.Task, req api.MigrateRequest) {
	labelled := false
	if src, ok := s.policySource(); ok {
		if labels, err := src.ServiceLabels(ctx); err == nil {
			var svcs []policy.Service
			for _, l := range labels {
				if l.Stack == stackName {
					svcs = append(svcs, policy.Service{Name: l.Service, Labels: l.Labels})
				}
			}
			p, err := policy.Derive(stackName, svcs)
			labelled = err == nil && migratesOnDrain(p)
		}
	}
	byNode := map[string]node.ArmRequest{}
	for _, t := range tasks {
		if t.DesiredState != "running" || t.State != "running" || t.ContainerID == "" || t.Node == "" || !movingTask(req, t) {
			continue
		}
		r := byNode[t.Node]
		if e, ok := armEntry(stackName, t); ok && labelled {
			r.Arm = append(r.Arm, e)
		} else {
			r.Disarm = append(r.Disarm, t.ContainerID)
		}
		byNode[t.Node] = r
	}
	for n, r := range byNode {
		if _, err := nodecall.Ask[node.ArmReply](context.WithoutCancel(ctx), s.cfg.Bus, node.ArmSubject(n), r, 5*time.Second); err != nil {
			s.log.Warn("migrate: cannot give the tasks their arming back (an unrelated stop of one is still held, then released)", "node", n, "err", err)
		}
	}
}

package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// `swarmckpt node drain NODE` (docs/drain.md, "swarmckpt node drain"): the
// orchestrated drain. The exact-mode labelled stacks' containers on NODE are migrated
// off it first (one migration per stack, MigrateOff: the migrate path with --from
// NODE); the swarm-mode ones take the drain hold (nodedrainhold.go: their tasks on
// NODE are armed, NODE is set to drain, and each held task's replacement is awaited,
// restored from its checkpoint), so that only the tasks on NODE stop. Swarm restarts
// the other stacks' tasks fresh, as without swarmckpt. An exact-mode stack whose
// migration fails stops the drain: NODE stays as it was, and the result says which
// stack failed and why; a swarm-mode task released fresh is named in the error (NODE
// is drained by then).

// NodeSwarm is what the orchestrated drain asks of the swarm manager (stack.Docker,
// stack.FakeSwarm; conformance: stacktest.NodeAvailability).
type NodeSwarm interface {
	DrainSwarm
	// SetNodeAvailability sets the node's availability (active, pause, drain).
	SetNodeAvailability(ctx context.Context, node, availability string) error
}

// drainPlan is planDrain's answer: which stacks with containers on the node move
// (with how many containers there), which are left to swarm.
type drainPlan struct {
	Migrate []drainStack
	Left    []string
}

type drainStack struct {
	Stack string
	Mode  string
	Moved int
}

// planDrain decides (pure) what a drain of nodeName does to each stack: policies are
// the stacks' derived policies (nil: no swarmckpt label), onNode how many running
// tasks each stack has on the node; mode the request's restore mode ("" = the
// stack's swarmckpt.mode, else swarm). Stacks come out sorted.
func planDrain(policies map[string]*policy.Policy, onNode map[string]int, mode string) drainPlan {
	var p drainPlan
	names := make([]string, 0, len(onNode))
	for st, n := range onNode {
		if n > 0 {
			names = append(names, st)
		}
	}
	slices.Sort(names)
	for _, st := range names {
		pol := policies[st]
		if !migratesOnDrain(pol) {
			p.Left = append(p.Left, st)
			continue
		}
		m := mode
		if m == "" {
			m = pol.Mode
		}
		if m == "" {
			m = api.ModeSwarm
		}
		p.Migrate = append(p.Migrate, drainStack{Stack: st, Mode: m, Moved: onNode[st]})
	}
	return p
}

func (s *Service) nodeSwarm() (NodeSwarm, bool) {
	sw, ok := s.cfg.Stopper.(NodeSwarm)
	return sw, ok
}

// policySource is where the coordinator reads the stacks' labels: the reconciler's
// source, else the stopper (stack.Docker).
func (s *Service) policySource() (PolicySource, bool) {
	if s.cfg.Policies != nil {
		return s.cfg.Policies, true
	}
	ps, ok := s.cfg.Stopper.(PolicySource)
	return ps, ok
}

// SetNode serves `swarmckpt node drain|activate NODE`.
func (s *Service) SetNode(ctx context.Context, req api.NodeRequest) (*api.NodeResult, error) {
	if err := api.ValidNode(req.Node); err != nil {
		return nil, err
	}
	if req.Availability != api.AvailabilityDrain && req.Availability != api.AvailabilityActive {
		return nil, api.Errorf(api.CodeBadRequest, "availability must be %s or %s, not %q", api.AvailabilityDrain, api.AvailabilityActive, req.Availability)
	}
	if req.Mode != "" && req.Mode != api.ModeExact && req.Mode != api.ModeSwarm {
		return nil, api.Errorf(api.CodeBadRequest, "--mode must be exact or swarm, not %q", req.Mode)
	}
	sw, ok := s.nodeSwarm()
	if !ok {
		return nil, api.Errorf(api.CodeFailed, "this coordinator has no swarm manager to talk to (started without --docker): it cannot drain or activate nodes")
	}
	was, err := sw.NodeAvailability(ctx, req.Node)
	if errors.Is(err, stack.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "node %s is not a node of the swarm (docker node ls lists them)", req.Node)
	}
	if err != nil {
		return nil, api.Errorf(api.CodeFailed, "read node %s's availability: %v", req.Node, err)
	}
	res := &api.NodeResult{Node: req.Node, Availability: was}
	progress := func(phase, msg string) {
		s.event(ctx, api.Event{ID: req.ID, Node: req.Node, Phase: phase, Message: msg})
	}
	if req.Availability == api.AvailabilityActive {
		if err := sw.SetNodeAvailability(ctx, req.Node, stack.AvailabilityActive); err != nil {
			return nil, api.Errorf(api.CodeFailed, "set node %s active: %v", req.Node, err)
		}
		res.Availability = stack.AvailabilityActive
		progress("active", "node "+req.Node+" is active: swarm may place tasks on it again")
		s.emit(ctx, events.Event{Kind: events.NodeDrain, Node: req.Node, Reason: "set active (was " + was + ")"})
		return res, nil
	}
	plan, err := s.planNodeDrain(ctx, sw, req)
	if err != nil {
		return nil, err
	}
	res.LeftToSwarm = plan.Left
	var msg []string
	for _, m := range plan.Migrate {
		msg = append(msg, fmt.Sprintf("%s (%d)", m.Stack, m.Moved))
	}
	progress("planned", fmt.Sprintf("migrate off %s: %s; left to swarm: %s", req.Node, orNone(msg), orNone(plan.Left)))
	var held []drainStack // swarm mode: the drain hold moves only the tasks on the node
	for _, m := range plan.Migrate {
		if m.Mode == api.ModeSwarm {
			held = append(held, m)
			continue
		}
		id := NewID(m.Stack, time.Now())
		progress("migrating", fmt.Sprintf("stack %s (%d containers here, --mode %s) as %s", m.Stack, m.Moved, m.Mode, id))
		start := time.Now()
		mr, err := s.MigrateOff(ctx, req.ID, id, m.Stack, req.Node, m.Mode)
		nm := api.NodeMigration{Stack: m.Stack, Snapshot: id, Moved: m.Moved, MS: time.Since(start).Milliseconds()}
		if mr != nil && mr.Snapshot != nil {
			nm.Snapshot = mr.Snapshot.ID
		}
		if err != nil {
			nm.Error = err.Error()
			res.Migrated = append(res.Migrated, nm)
			progress("failed", fmt.Sprintf("stack %s: %v", m.Stack, err))
			s.emit(ctx, events.Event{Kind: events.NodeDrain, Node: req.Node, Stack: m.Stack, Snapshot: nm.Snapshot,
				Reason: "migration failed, node not drained: " + err.Error()})
			var ae *api.Error
			code := api.CodeFailed
			if errors.As(err, &ae) {
				code = ae.Code
			}
			return res, api.Errorf(code, "node %s not drained: the migration of stack %s off it failed: %v; fix that and run 'swarmckpt node drain %s' again (or 'docker node update --availability drain %s' lets the drain hold checkpoint its armed tasks one by one)",
				req.Node, m.Stack, err, req.Node, req.Node)
		}
		res.Migrated = append(res.Migrated, nm)
		progress("migrated", fmt.Sprintf("stack %s off %s in %dms (snapshot %s)", m.Stack, req.Node, nm.MS, nm.Snapshot))
		s.emit(ctx, events.Event{Kind: events.Migrated, Node: req.Node, Stack: m.Stack, Snapshot: nm.Snapshot, MS: nm.MS})
	}
	if len(held) > 0 {
		// drainHeld sets the node to drain itself: that is what stops the tasks.
		if err := s.drainHeld(ctx, sw, req, held, res, progress); err != nil {
			s.emit(ctx, events.Event{Kind: events.NodeDrain, Node: req.Node, Reason: "drain hold: " + err.Error()})
			return res, err
		}
	} else {
		if err := sw.SetNodeAvailability(ctx, req.Node, stack.AvailabilityDrain); err != nil {
			return res, api.Errorf(api.CodeFailed, "the labelled stacks were moved off %s, but setting it to drain failed: %v; run 'docker node update --availability drain %s'", req.Node, err, req.Node)
		}
		res.Availability = stack.AvailabilityDrain
	}
	progress("drained", fmt.Sprintf("node %s set to drain: swarm moves the other stacks' tasks (fresh restart)", req.Node))
	s.emit(ctx, events.Event{Kind: events.NodeDrain, Node: req.Node, Reason: fmt.Sprintf("drained: %d labelled stacks migrated, %d left to swarm", len(res.Migrated), len(res.LeftToSwarm))})
	return res, nil
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// planNodeDrain reads the stacks' labels and tasks and plans the drain of req.Node.
func (s *Service) planNodeDrain(ctx context.Context, sw NodeSwarm, req api.NodeRequest) (drainPlan, error) {
	src, ok := s.policySource()
	if !ok {
		return drainPlan{}, api.Errorf(api.CodeFailed, "this coordinator cannot read the stacks' labels: it cannot tell which stacks to migrate")
	}
	labels, err := src.ServiceLabels(ctx)
	if err != nil {
		return drainPlan{}, api.Errorf(api.CodeFailed, "list the stacks' service labels: %v", err)
	}
	byStack := map[string][]policy.Service{}
	for _, l := range labels {
		byStack[l.Stack] = append(byStack[l.Stack], policy.Service{Name: l.Service, Labels: l.Labels})
	}
	policies := map[string]*policy.Policy{}
	onNode := map[string]int{}
	for st, services := range byStack {
		p, err := policy.Derive(st, services)
		if err != nil {
			// Label errors: the stack is left to swarm, and the stream says why.
			s.emit(ctx, events.Event{Kind: events.LabelError, Stack: st, Node: req.Node,
				Reason: "left to swarm by the drain of " + req.Node + ": " + err.Error()})
			p = nil
		}
		policies[st] = p
		tasks, err := sw.Tasks(ctx, st)
		if err != nil {
			return drainPlan{}, api.Errorf(api.CodeFailed, "list stack %s's tasks: %v", st, err)
		}
		for _, t := range tasks {
			if t.Node == req.Node && t.DesiredState == "running" {
				onNode[st]++
			}
		}
	}
	return planDrain(policies, onNode, req.Mode), nil
}

// MigrateOff migrates stackName's containers on node off it: the migrate path with
// --from node (coordinator/restore Restores.Migrate; which containers stop is that
// path's business), as snapshot id. Its progress is also forwarded to the progress of
// operation parent (the drain), when given.
func (s *Service) MigrateOff(ctx context.Context, parent, id, stackName, nodeName, mode string) (*api.MigrateResult, error) {
	if parent != "" && parent != id {
		// The forwarder runs behind the migration's own progress: a marker published
		// after the migration ends, behind its last event on the same connection, says
		// when everything was forwarded (then it unsubscribes; bounded).
		const endMarker = "progress-forwarded"
		flushed := make(chan struct{})
		var once sync.Once
		sub, err := s.cfg.Bus.Subscribe(api.ProgressSubject(id), func(m *bus.Msg) {
			var e api.Event
			if json.Unmarshal(m.Data, &e) != nil {
				return
			}
			if e.Phase == endMarker {
				once.Do(func() { close(flushed) })
				return
			}
			e.ID = parent
			if e.Container == "" {
				e.Message = strings.TrimSpace(stackName + " " + e.Message)
			}
			b, _ := json.Marshal(e)
			_ = s.cfg.Bus.Publish(context.WithoutCancel(ctx), api.ProgressSubject(parent), b)
		})
		if err == nil {
			defer func() {
				b, _ := json.Marshal(api.Event{ID: id, Phase: endMarker})
				if s.cfg.Bus.Publish(context.WithoutCancel(ctx), api.ProgressSubject(id), b) == nil {
					select {
					case <-flushed:
					case <-time.After(2 * time.Second):
					}
				}
				_ = sub.Unsubscribe()
			}()
		}
	}
	defer s.userOp(stackName)()
	return s.Migrate(ctx, api.MigrateRequest{ID: id, Stack: stackName, From: nodeName, Mode: mode})
}

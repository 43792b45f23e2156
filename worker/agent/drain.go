package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// The drain hold (docs/drain.md): the coordinator arms containers (OpArm), the runtime
// wrapper holds their stop, the agent reports every held stop on DrainEventSubject
// (watchDrain), and the coordinator decides it (OpHeld: checkpoint, then release).

// DefaultDrainPoll is how often the agent looks for held stops (Config.DrainPoll);
// DefaultDrainRepublish how often it reports one still held again.
const (
	DefaultDrainPoll      = 200 * time.Millisecond
	DefaultDrainRepublish = time.Second
)

func (a *Agent) serveDrain(ctx context.Context, s *subs) {
	d := a.cfg.Worker.Drainer
	unavailable := a.unavailable(d == nil, "cannot hold stops for a drain")
	s.add(serveOp(ctx, a, node.OpArm, unavailable, func(ctx context.Context, req *node.ArmRequest, rep *node.ArmReply) error {
		fail := func(c string, err error) {
			if rep.Failed == nil {
				rep.Failed = map[string]string{}
			}
			rep.Failed[c] = err.Error()
		}
		for _, e := range req.Arm {
			if err := d.Arm(ctx, e.Container, worker.ArmOptions{Budget: e.Budget, Grace: e.Grace, Policy: e.Policy, Stack: e.Stack, Service: e.Service, Slot: e.Slot}); err != nil {
				fail(e.Container, err)
			}
		}
		for _, c := range req.Disarm {
			if err := d.Disarm(ctx, c); err != nil {
				fail(c, err)
			}
		}
		return nil
	}))
	s.add(serveOp(ctx, a, node.OpHeld, unavailable, func(ctx context.Context, req *node.HeldRequest, rep *node.HeldReply) error {
		if req.Release {
			return d.ReleaseHeld(ctx, req.Container, req.Reason)
		}
		if req.Set == "" {
			return node.Mark(errors.New("held: a checkpoint needs a set ID"), node.ErrInvalidArgument)
		}
		m, err := d.CheckpointHeld(ctx, req.Container, req.Set, req.Into)
		if m != nil {
			rep.Files = ImageSet(a.info, req.Set, m).Files
		}
		return err
	}))
}

// watchDrain publishes a DrainEvent for every stop the wrapper holds on this node, at
// once and again every Config.DrainRepublish while it is held (a coordinator that was
// not listening, or a new leader, then still decides it before its deadline; one
// checkpointed already (the event's Set) by a leader that died before it placed the
// set and released the stop is carried on from that set), until ctx ends.
func (a *Agent) watchDrain(ctx context.Context) {
	d := a.cfg.Worker.Drainer
	if d == nil {
		return
	}
	t := time.NewTicker(a.cfg.DrainPoll)
	defer t.Stop()
	published := map[string]time.Time{}   // container + deadline of a hold -> last published
	stops := map[string]worker.HeldStop{} // the same keys: the hold
	failing := false
	for {
		hs, err := d.HeldStops(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			a.log.Warn("cannot list the stops held for a drain; retrying", "err", err)
			failing = true
		case err == nil:
			failing = false
			now := map[string]time.Time{}
			for _, h := range hs {
				k := h.ContainerID + "@" + h.Deadline.String()
				last, seen := published[k]
				now[k] = last
				stops[k] = h
				if seen && time.Since(last) < a.cfg.DrainRepublish {
					continue
				}
				if !seen {
					a.log.Info("stop held for a drain", "container", h.Name, "id", h.ContainerID, "service", h.Armed.Service,
						"slot", h.Armed.Slot, "signal", h.Signal, "deadline", h.Deadline)
				}
				if err := a.publishDrain(ctx, heldEvent(a.cfg.Node, h)); err != nil {
					a.log.Warn("cannot report a held stop to the coordinator; it proceeds at its deadline unless decided", "container", h.Name, "err", err)
					continue
				}
				now[k] = time.Now()
			}
			for k, h := range stops {
				if _, held := now[k]; held {
					continue
				}
				delete(stops, k)
				if h.Set == "" && !time.Now().Before(h.Deadline) {
					// Gone undecided at its deadline: the wrapper passed the stop on.
					e := heldEvent(a.cfg.Node, h)
					e.What, e.Reason = node.DrainFailed, fmt.Sprintf("no verdict within the hold budget (deadline %s): the stop went on as swarm's, stop signal then SIGKILL at stop_grace_period; swarm restarts the task fresh", h.Deadline.UTC().Format(time.RFC3339))
					a.log.Warn("held stop timed out undecided: it went on as swarm's", "container", h.Name, "deadline", h.Deadline)
					if err := a.publishDrain(ctx, e); err != nil {
						a.log.Warn("cannot report a timed-out hold", "container", h.Name, "err", err)
					}
				}
			}
			published = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heldEvent is the DrainEvent of a held stop.
func heldEvent(nodeName string, h worker.HeldStop) node.DrainEvent {
	return node.DrainEvent{Node: nodeName, ContainerID: h.ContainerID, Name: h.Name, Stack: h.Armed.Stack, Service: h.Armed.Service,
		Slot: h.Armed.Slot, Policy: h.Armed.Policy, Signal: h.Signal, Deadline: h.Deadline, What: node.DrainHeld, Set: h.Set, Into: h.Into}
}

func (a *Agent) publishDrain(ctx context.Context, e node.DrainEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := a.cfg.Bus.Publish(ctx, node.DrainEventSubject, b); err != nil {
		return fmt.Errorf("publish %s: %w", node.DrainEventSubject, err)
	}
	return nil
}

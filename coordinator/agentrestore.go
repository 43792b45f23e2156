package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// AgentRestorer restores through the node agents: the source node streams each image
// set to the target node's worker (checksums verified on arrival), then the target
// restores it.
type AgentRestorer struct {
	Bus bus.Transport
	// Addr returns a node's transfer endpoint (from its heartbeats).
	Addr func(node string) (string, bool)
	// Timeout bounds each transfer and each restore. Default 5m.
	Timeout time.Duration
	// Events, when set, receives per-container progress.
	Events func(ctx context.Context, e api.Event)
}

var _ Restorer = (*AgentRestorer)(nil)

func (r *AgentRestorer) call(ctx context.Context, subject string, req any) (*nodeagent.OpReply, error) {
	b, _ := json.Marshal(req)
	t := r.Timeout
	if t <= 0 {
		t = 5 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	out, err := r.Bus.Request(cctx, subject, b)
	if err != nil {
		if errors.Is(err, bus.ErrNoResponders) {
			return nil, fmt.Errorf("no live worker answers on %s", subject)
		}
		return nil, err
	}
	var rep nodeagent.OpReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

// Restore implements Restorer.
func (r *AgentRestorer) Restore(ctx context.Context, m *store.Manifest, targets map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, c := range m.Containers {
		target, ok := targets[c.Key()]
		if !ok {
			continue
		}
		set := nodeagent.SetID(m.ID, c.Key())
		emit := func(phase, msg string, ms int64) {
			if r.Events != nil {
				r.Events(ctx, api.Event{ID: m.ID, Container: c.Key(), Node: target, Phase: phase, Message: msg, MS: ms})
			}
		}
		if target != c.Node {
			addr, ok := r.Addr(target)
			if !ok || addr == "" {
				return out, fmt.Errorf("%s: target node %s has no live worker with a transfer address", c.Key(), target)
			}
			rep, err := r.call(ctx, nodeagent.SendSubject(c.Node), nodeagent.SendRequest{Set: set, To: addr})
			if err != nil {
				return out, fmt.Errorf("%s: transfer of its images from %s to %s: %w", c.Key(), c.Node, target, err)
			}
			emit("transferred", fmt.Sprintf("%s -> %s", c.Node, target), rep.MS)
		}
		name := strings.ReplaceAll(c.Key(), ".", "-") + "-" + shortID(m.ID)
		rep, err := r.call(ctx, nodeagent.RestoreSubject(target), nodeagent.RestoreRequest{Set: set, Options: nodeagent.RestoreOptions{Name: name}})
		if err != nil {
			return out, fmt.Errorf("%s: restore on %s: %w", c.Key(), target, err)
		}
		out[c.Key()] = rep.Container
		emit("restored", "container "+shortID(rep.Container), rep.MS)
	}
	return out, nil
}

func shortID(s string) string {
	if i := strings.LastIndex(s, "-"); i >= 0 && len(s)-i > 1 {
		return s[i+1:]
	}
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// WorkerAddr returns the transfer endpoint a node's agent announced.
func (s *Service) WorkerAddr(node string) (string, bool) {
	for _, w := range s.live.live() {
		if w.Node == node {
			return w.Address, w.Address != ""
		}
	}
	return "", false
}

// Emit publishes a progress event (for restorers).
func (s *Service) Emit(ctx context.Context, e api.Event) { s.event(ctx, e) }

// SetRestorer installs the restorer after construction (it may need the Service).
func (s *Service) SetRestorer(r Restorer) { s.cfg.Restorer = r }

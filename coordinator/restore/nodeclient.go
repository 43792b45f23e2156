package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
)

// askNode sends req to a node agent's subject and decodes its OpReply, bounded by
// timeout: the transport's error as it is (bus.ErrNoResponders when no agent
// listens), or the agent's own error (with its reply).
func askNode(ctx context.Context, b bus.Transport, subject string, req any, timeout time.Duration) (*nodeagent.OpReply, error) {
	data, _ := json.Marshal(req)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := b.Request(cctx, subject, data)
	if err != nil {
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

// AgentNodes implements Nodes over the bus: every call is one request to a
// node agent's subject (askNode), bounded by Timeout.
type AgentNodes struct {
	Bus bus.Transport
	// AddrOf returns a node's transfer endpoint (Service.WorkerAddr: from its agent's
	// heartbeats).
	AddrOf func(node string) (string, bool)
	// Timeout bounds each transfer, restore and placement call. Default 5m.
	Timeout time.Duration
}

var _ Nodes = AgentNodes{}

func (a AgentNodes) call(ctx context.Context, subject string, req any) (*nodeagent.OpReply, error) {
	t := a.Timeout
	if t <= 0 {
		t = 5 * time.Minute
	}
	rep, err := askNode(ctx, a.Bus, subject, req, t)
	if errors.Is(err, bus.ErrNoResponders) {
		return nil, fmt.Errorf("no live worker answers on %s", subject)
	}
	return rep, err
}

// Addr implements Sets.
func (a AgentNodes) Addr(node string) (string, bool) {
	if a.AddrOf == nil {
		return "", false
	}
	return a.AddrOf(node)
}

// Send implements Sets.
func (a AgentNodes) Send(ctx context.Context, from string, req nodeagent.SendRequest) (*nodeagent.OpReply, error) {
	return a.call(ctx, nodeagent.SendSubject(from), req)
}

// Drop implements Sets.
func (a AgentNodes) Drop(ctx context.Context, node, set string) error {
	_, err := a.call(ctx, nodeagent.DropSubject(node), nodeagent.DropRequest{Set: set})
	return err
}

// Restore implements Containers.
func (a AgentNodes) Restore(ctx context.Context, node string, req nodeagent.RestoreRequest) (*nodeagent.OpReply, error) {
	return a.call(ctx, nodeagent.RestoreSubject(node), req)
}

// Unlock implements Containers.
func (a AgentNodes) Unlock(ctx context.Context, node string, containers []string) error {
	_, err := a.call(ctx, nodeagent.UnlockSubject(node), nodeagent.UnlockRequest{Containers: containers})
	return err
}

// Remove implements Containers.
func (a AgentNodes) Remove(ctx context.Context, node string, containers []string) error {
	_, err := a.call(ctx, nodeagent.RemoveSubject(node), nodeagent.UnlockRequest{Containers: containers})
	return err
}

// Place implements Placements.
func (a AgentNodes) Place(ctx context.Context, node string, req nodeagent.PlaceRequest) (*nodeagent.OpReply, error) {
	return a.call(ctx, nodeagent.PlaceSubject(node), req)
}

// Unplace implements Placements.
func (a AgentNodes) Unplace(ctx context.Context, node string, req nodeagent.UnplaceRequest) (*nodeagent.OpReply, error) {
	return a.call(ctx, nodeagent.UnplaceSubject(node), req)
}

// AddressMap implements Placements.
func (a AgentNodes) AddressMap(ctx context.Context, node string, req nodeagent.AddressMapRequest) error {
	_, err := a.call(ctx, nodeagent.AddressMapSubject(node), req)
	return err
}

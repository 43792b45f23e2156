package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator/nodecall"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// AgentNodes implements Nodes over the bus: every call is one request to a
// node agent's operation subject (nodecall.Ask), bounded by Timeout.
type AgentNodes struct {
	Bus bus.Transport
	// AddrOf returns a node's transfer endpoint (Service.WorkerAddr: from its agent's
	// heartbeats).
	AddrOf func(node string) (string, bool)
	// Timeout bounds each transfer, restore and placement call. Default 5m.
	Timeout time.Duration
}

var _ Nodes = AgentNodes{}

// call is nodecall.Ask with a's timeout, and an error that says so when no agent
// answers.
func call[R any, P interface {
	*R
	node.Reply
}](ctx context.Context, a AgentNodes, subject string, req any) (*R, error) {
	t := a.Timeout
	if t <= 0 {
		t = 5 * time.Minute
	}
	rep, err := nodecall.Ask[R, P](ctx, a.Bus, subject, req, t)
	if errors.Is(err, bus.ErrNoResponders) {
		return nil, fmt.Errorf("no live worker answers on %s: %w", subject, node.ErrUnavailable)
	}
	return rep, err
}

// Addr implements Sets.
func (a AgentNodes) Addr(nodeName string) (string, bool) {
	if a.AddrOf == nil {
		return "", false
	}
	return a.AddrOf(nodeName)
}

// Send implements Sets.
func (a AgentNodes) Send(ctx context.Context, from string, req node.SendRequest) (*node.SendReply, error) {
	return call[node.SendReply](ctx, a, node.SendSubject(from), req)
}

// Drop implements Sets.
func (a AgentNodes) Drop(ctx context.Context, nodeName, set string) error {
	_, err := call[node.DropReply](ctx, a, node.DropSubject(nodeName), node.DropRequest{Set: set})
	return err
}

// Restore implements Containers.
func (a AgentNodes) Restore(ctx context.Context, nodeName string, req node.RestoreRequest) (*node.RestoreReply, error) {
	return call[node.RestoreReply](ctx, a, node.RestoreSubject(nodeName), req)
}

// Unlock implements Containers.
func (a AgentNodes) Unlock(ctx context.Context, nodeName string, containers []string) error {
	_, err := call[node.UnlockReply](ctx, a, node.UnlockSubject(nodeName), node.UnlockRequest{Containers: containers})
	return err
}

// Remove implements Containers.
func (a AgentNodes) Remove(ctx context.Context, nodeName string, containers []string) error {
	_, err := call[node.RemoveReply](ctx, a, node.RemoveSubject(nodeName), node.RemoveRequest{Containers: containers})
	return err
}

// Place implements Placements.
func (a AgentNodes) Place(ctx context.Context, nodeName string, req node.PlaceRequest) (*node.PlaceReply, error) {
	return call[node.PlaceReply](ctx, a, node.PlaceSubject(nodeName), req)
}

// Unplace implements Placements.
func (a AgentNodes) Unplace(ctx context.Context, nodeName string, req node.UnplaceRequest) (*node.UnplaceReply, error) {
	return call[node.UnplaceReply](ctx, a, node.UnplaceSubject(nodeName), req)
}

// AddressMap implements Placements.
func (a AgentNodes) AddressMap(ctx context.Context, nodeName string, req node.AddressMapRequest) error {
	_, err := call[node.AddressMapReply](ctx, a, node.AddressMapSubject(nodeName), req)
	return err
}

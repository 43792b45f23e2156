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
	// Timeout bounds each call (a shorter deadline of its ctx bounds it too). Default 5m.
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
		return nil, noAgentError{subject}
	}
	return rep, err
}

// noAgentError is the error of a call no agent answers: it matches both
// node.ErrUnavailable and bus.ErrNoResponders.
type noAgentError struct{ subject string }

func (e noAgentError) Error() string {
	return fmt.Sprintf("no live worker answers on %s: %v", e.subject, node.ErrUnavailable)
}

func (e noAgentError) Unwrap() []error { return []error{node.ErrUnavailable, bus.ErrNoResponders} }

// Preflight implements Checks.
func (a AgentNodes) Preflight(ctx context.Context, nodeName string, req node.PreflightRequest) (*node.PreflightReply, error) {
	rep, err := call[node.PreflightReply](ctx, a, node.PreflightSubject(nodeName), req)
	if rep != nil {
		return rep, nil // the node answered: its refusal is rep.Error
	}
	return nil, err
}

// Verify implements Checks.
func (a AgentNodes) Verify(ctx context.Context, nodeName string, req node.VerifyRequest) (*node.VerifyReply, error) {
	return call[node.VerifyReply](ctx, a, node.VerifySubject(nodeName), req)
}

// Standalone implements Checks.
func (a AgentNodes) Standalone(ctx context.Context, nodeName, stack string) ([]node.Standalone, error) {
	rep, err := call[node.StandaloneReply](ctx, a, node.StandaloneSubject(nodeName), node.StandaloneRequest{Stack: stack})
	if err != nil {
		return nil, err
	}
	return rep.Containers, nil
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

// StopParked implements Containers.
func (a AgentNodes) StopParked(ctx context.Context, nodeName string, req node.StopRequest) error {
	_, err := call[node.StopReply](ctx, a, node.StopSubject(nodeName), req)
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

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
//
// With Agent set, a call does not outlive the agent it waits for: an agent that
// restarts (a new start in its heartbeats) or stops being heard from while it serves
// a request cannot answer any more (kill -9 loses the request with the process), so
// the call fails at once with an error matching node.ErrUnavailable (agentLostError)
// instead of waiting for Timeout. A call that may be repeated (every one but the
// placements, whose state the agent keeps in memory) is then
// repeated, with a bounded backoff, while the node's agent is live and for at most
// RetryFor: after that agent loss, after "no responders" (an agent between its death
// and its restart), and after node.ErrWorkerUnreachable (the worker killed or
// restarting while the agent called it). The node side answers a repeated request as
// the first (a set already sent: node.ErrSetExists; a container already restored
// from that set: the worker's Restore answers with it; a removal of a container gone,
// an unlock of one unlocked: success).
type AgentNodes struct {
	Bus bus.Transport
	// AddrOf returns a node's transfer endpoint (Service.WorkerAddr: from its agent's
	// heartbeats).
	AddrOf func(node string) (string, bool)
	// Timeout bounds each call (a shorter deadline of its ctx bounds it too). Default 5m.
	Timeout time.Duration
	// Agent, when set, returns when node's agent started (its heartbeats' Started)
	// and whether it is live (heard from within the coordinator's worker timeout):
	// Host.Agent. Without it a call waits for its answer or Timeout and is not
	// repeated.
	Agent func(node string) (started time.Time, live bool)
	// RetryFor bounds how long a call is repeated (above). Default 30s.
	RetryFor time.Duration
}

var _ Nodes = AgentNodes{}

// watchPoll is how often a call checks its agent's liveness.
const watchPoll = 50 * time.Millisecond

// call is nodecall.Ask with a's timeout to nodeName's agent, watched and repeated as
// AgentNodes says (repeat: the request is idempotent), and an error that says so when
// no agent answers.
func call[R any, P interface {
	*R
	node.Reply
}](ctx context.Context, a AgentNodes, nodeName, subject string, req any, repeat bool) (*R, error) {
	retryFor := a.RetryFor
	if retryFor <= 0 {
		retryFor = 30 * time.Second
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		rep, err := ask[R, P](ctx, a, nodeName, subject, req)
		if err == nil || !repeat || a.Agent == nil || !retryable(err) || ctx.Err() != nil {
			return rep, err
		}
		if _, live := a.Agent(nodeName); !live || time.Since(start) > retryFor {
			return rep, err // dead for good (not heard from), or not back in time
		}
		wait := min(time.Duration(attempt)*100*time.Millisecond, time.Second)
		select {
		case <-ctx.Done():
			return rep, err
		case <-time.After(wait):
		}
	}
}

// ask is one request to nodeName's agent on subject, failing as soon as a.Agent says
// that agent restarted or is not live any more (agentLostError).
func ask[R any, P interface {
	*R
	node.Reply
}](ctx context.Context, a AgentNodes, nodeName, subject string, req any) (*R, error) {
	t := a.Timeout
	if t <= 0 {
		t = 5 * time.Minute
	}
	wctx := ctx
	if a.Agent != nil {
		started, _ := a.Agent(nodeName)
		c, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(watchPoll)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				switch now, live := a.Agent(nodeName); {
				case !live:
					cancel(agentLostError{nodeName, subject, "is not heard from any more"})
					return
				case !now.Equal(started):
					cancel(agentLostError{nodeName, subject, "restarted"})
					return
				}
			}
		}()
		wctx = c
	}
	rep, err := nodecall.Ask[R, P](wctx, a.Bus, subject, req, t)
	var lost agentLostError
	if err != nil && ctx.Err() == nil && errors.As(context.Cause(wctx), &lost) {
		return nil, lost
	}
	if errors.Is(err, bus.ErrNoResponders) {
		return nil, noAgentError{subject}
	}
	return rep, err
}

// retryable: the request may not have been served, or its answer was lost, because
// the agent or its worker ended; the agent (restarted) can be asked again.
func retryable(err error) bool {
	var lost agentLostError
	var none noAgentError
	return errors.As(err, &lost) || errors.As(err, &none) || errors.Is(err, node.ErrWorkerUnreachable)
}

// noAgentError is the error of a call no agent answers: it matches both
// node.ErrUnavailable and bus.ErrNoResponders.
type noAgentError struct{ subject string }

func (e noAgentError) Error() string {
	return fmt.Sprintf("no live worker answers on %s: %v", e.subject, node.ErrUnavailable)
}

func (e noAgentError) Unwrap() []error { return []error{node.ErrUnavailable, bus.ErrNoResponders} }

// agentLostError is the error of a call whose agent restarted or died while it served
// the request: its answer is lost. It matches node.ErrUnavailable.
type agentLostError struct{ node, subject, what string }

func (e agentLostError) Error() string {
	return fmt.Sprintf("the agent of node %s %s while it served %s: its answer is lost (%v)", e.node, e.what, e.subject, node.ErrUnavailable)
}

func (e agentLostError) Unwrap() error { return node.ErrUnavailable }

// Preflight implements Checks.
func (a AgentNodes) Preflight(ctx context.Context, nodeName string, req node.PreflightRequest) (*node.PreflightReply, error) {
	rep, err := call[node.PreflightReply](ctx, a, nodeName, node.PreflightSubject(nodeName), req, true)
	if rep != nil {
		return rep, nil // the node answered: its refusal is rep.Error
	}
	return nil, err
}

// Verify implements Checks.
func (a AgentNodes) Verify(ctx context.Context, nodeName string, req node.VerifyRequest) (*node.VerifyReply, error) {
	return call[node.VerifyReply](ctx, a, nodeName, node.VerifySubject(nodeName), req, true)
}

// Standalone implements Checks.
func (a AgentNodes) Standalone(ctx context.Context, nodeName, stack string) ([]node.Standalone, error) {
	rep, err := call[node.StandaloneReply](ctx, a, nodeName, node.StandaloneSubject(nodeName), node.StandaloneRequest{Stack: stack}, true)
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
	return call[node.SendReply](ctx, a, from, node.SendSubject(from), req, true)
}

// Drop implements Sets.
func (a AgentNodes) Drop(ctx context.Context, nodeName, set string) error {
	_, err := call[node.DropReply](ctx, a, nodeName, node.DropSubject(nodeName), node.DropRequest{Set: set}, true)
	return err
}

// Restore implements Containers.
func (a AgentNodes) Restore(ctx context.Context, nodeName string, req node.RestoreRequest) (*node.RestoreReply, error) {
	return call[node.RestoreReply](ctx, a, nodeName, node.RestoreSubject(nodeName), req, req.Options.Name != "" && req.Options.Service == "")
}

// Unlock implements Containers.
func (a AgentNodes) Unlock(ctx context.Context, nodeName string, containers []string) error {
	_, err := call[node.UnlockReply](ctx, a, nodeName, node.UnlockSubject(nodeName), node.UnlockRequest{Containers: containers}, true)
	return err
}

// Remove implements Containers.
func (a AgentNodes) Remove(ctx context.Context, nodeName string, containers []string) error {
	_, err := call[node.RemoveReply](ctx, a, nodeName, node.RemoveSubject(nodeName), node.RemoveRequest{Containers: containers}, true)
	return err
}

// StopParked implements Containers. Repeated after an agent restart: a container
// the lost agent ended is gone, one it (or its successor) released runs on, and a
// container not parked is never ended (node.StopOutcome says which).
func (a AgentNodes) StopParked(ctx context.Context, nodeName string, req node.StopRequest) (*node.StopReply, error) {
	return call[node.StopReply](ctx, a, nodeName, node.StopSubject(nodeName), req, true)
}

// Disconnect implements PostCopySources.
func (a AgentNodes) Disconnect(ctx context.Context, nodeName string, containers []string) error {
	_, err := call[node.DisconnectReply](ctx, a, nodeName, node.DisconnectSubject(nodeName), node.DisconnectRequest{Containers: containers}, true)
	return err
}

// WaitLazy implements PostCopySources. Repeated after an agent restart: the worker
// keeps the page server's outcome.
func (a AgentNodes) WaitLazy(ctx context.Context, nodeName, set string) error {
	_, err := call[node.WaitLazyReply](ctx, a, nodeName, node.WaitLazySubject(nodeName), node.WaitLazyRequest{Set: set}, true)
	return err
}

// Reconnect implements PostCopySources. Repeated after an agent restart: a network
// the container is on already is left as it is.
func (a AgentNodes) Reconnect(ctx context.Context, nodeName string, req node.ReconnectRequest) error {
	_, err := call[node.ReconnectReply](ctx, a, nodeName, node.ReconnectSubject(nodeName), req, true)
	return err
}

// PreCopy implements PreCopySources. Not repeated: a worker that restarted lost its
// pre-dumps, and the migration fails (nothing changed).
func (a AgentNodes) PreCopy(ctx context.Context, nodeName string, req node.PreCopyRequest) (*node.PreCopyReply, error) {
	return call[node.PreCopyReply](ctx, a, nodeName, node.PreCopySubject(nodeName), req, false)
}

// Place implements Placements.
func (a AgentNodes) Place(ctx context.Context, nodeName string, req node.PlaceRequest) (*node.PlaceReply, error) {
	return call[node.PlaceReply](ctx, a, nodeName, node.PlaceSubject(nodeName), req, false)
}

// Unplace implements Placements.
func (a AgentNodes) Unplace(ctx context.Context, nodeName string, req node.UnplaceRequest) (*node.UnplaceReply, error) {
	return call[node.UnplaceReply](ctx, a, nodeName, node.UnplaceSubject(nodeName), req, false)
}

// AddressMap implements Placements.
func (a AgentNodes) AddressMap(ctx context.Context, nodeName string, req node.AddressMapRequest) error {
	_, err := call[node.AddressMapReply](ctx, a, nodeName, node.AddressMapSubject(nodeName), req, false)
	return err
}

package coordinator

import (
	"context"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// Restores and migrations are served by coordinator/restore (restore.Restores), to
// which the Service is the restore.Host: its snapshots, stack locks, live workers
// and progress events.

// Restorer, Stopper and ServiceStopper are the restore package's.
type (
	Restorer       = restore.Restorer
	Stopper        = restore.Stopper
	ServiceStopper = restore.ServiceStopper
)

// streamPlan is restore.StreamPlan: a migration's targets for the dumps' streams.
type streamPlan = restore.StreamPlan

// host is the Service as restore.Host.
type host struct{ s *Service }

var _ restore.Host = host{}

func (h host) Snapshot(ctx context.Context, req api.SnapshotRequest, stream restore.StreamPlan, held store.Lock) (*store.Manifest, error) {
	return h.s.snapshot(ctx, req, stream, held)
}

func (h host) LockStack(ctx context.Context, stackName, op string) (store.Lock, string, error) {
	return h.s.lockStackAs(ctx, stackName, op)
}

func (h host) Live() []store.Worker { return h.s.live.live() }

func (h host) Agent(node string) (time.Time, bool) { return h.s.live.agent(node) }

func (h host) AwaitAgents(ctx context.Context, nodes map[string]bool) { h.s.awaitAgents(ctx, nodes) }

func (h host) DropSets(ctx context.Context, sets []restore.SetRef) ([]restore.SetRef, []string) {
	refs := make([]setRef, len(sets))
	for i, r := range sets {
		refs[i] = setRef{r.Node, r.Set}
	}
	dropped, left := h.s.dropSets(ctx, refs)
	out := make([]restore.SetRef, len(dropped))
	for i, r := range dropped {
		out[i] = restore.SetRef{Node: r.node, Set: r.set}
	}
	return out, left
}

func (h host) Event(ctx context.Context, e api.Event) { h.s.event(ctx, e) }

// WorkerAddr returns the transfer endpoint a node's agent announced.
func (s *Service) WorkerAddr(node string) (string, bool) { return s.restores.WorkerAddr(node) }

// Emit publishes a progress event (for restorers).
func (s *Service) Emit(ctx context.Context, e api.Event) { s.event(ctx, e) }

// RecoverOperations finishes or rolls back the restores and migrations a dead
// coordinator journaled (restore.Restores.RecoverOperations). Startup recovery
// (recover.go) calls it; a standby taking over calls it too.
func (s *Service) RecoverOperations(ctx context.Context) error {
	return s.restores.RecoverOperations(ctx)
}

// StandaloneContainers implements stack.StandaloneFunc (restore.Restores.StandaloneContainers).
// The list asks the live nodes' agents: a coordinator that started less than a worker
// timeout ago may not have heard every live agent yet (each heartbeats well within it),
// so it first waits until then. Without the wait, a snapshot sent again to a restarted
// coordinator found a stack of restored containers "with no running task" (fault
// seed 1014: exit 3 although the stack ran).
func (s *Service) StandaloneContainers(ctx context.Context, stackName string) ([]stack.Container, error) {
	if wait := time.Until(s.started.Add(s.cfg.WorkerTimeout)); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return s.restores.StandaloneContainers(ctx, stackName)
}

func storeErr(err error) error { return restore.StoreErr(err) }

package stacktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// NodeAvailabilities is what the drain needs of a swarm manager's nodes
// (stack.Docker, stack.FakeSwarm).
type NodeAvailabilities interface {
	NodeAvailability(ctx context.Context, node string) (string, error)
	SetNodeAvailability(ctx context.Context, node, availability string) error
}

// NodeAvailability checks sw on node (a node of the swarm, active, whose tasks may
// stay: only pause is used, which moves nothing): set to pause it reads pause, set
// back to active it reads active; an unknown node is stack.ErrNotFound for both; an
// availability swarm does not know is refused (stack.ErrBadAvailability) and changes
// nothing.
func NodeAvailability(t *testing.T, sw NodeAvailabilities, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	read := func(want string) {
		t.Helper()
		got, err := sw.NodeAvailability(ctx, node)
		if err != nil || got != want {
			t.Fatalf("NodeAvailability(%s) = %q, %v; want %q", node, got, err, want)
		}
	}
	read(stack.AvailabilityActive)
	if err := sw.SetNodeAvailability(ctx, node, stack.AvailabilityPause); err != nil {
		t.Fatalf("SetNodeAvailability(%s, pause): %v", node, err)
	}
	defer func() {
		_ = sw.SetNodeAvailability(context.WithoutCancel(ctx), node, stack.AvailabilityActive)
	}()
	read(stack.AvailabilityPause)
	if err := sw.SetNodeAvailability(ctx, node, "sleepy"); !errors.Is(err, stack.ErrBadAvailability) {
		t.Fatalf("SetNodeAvailability(sleepy): %v, want stack.ErrBadAvailability", err)
	}
	read(stack.AvailabilityPause)
	if err := sw.SetNodeAvailability(ctx, node, stack.AvailabilityActive); err != nil {
		t.Fatalf("SetNodeAvailability(%s, active): %v", node, err)
	}
	read(stack.AvailabilityActive)
	if _, err := sw.NodeAvailability(ctx, "no-such-node"); !errors.Is(err, stack.ErrNotFound) {
		t.Fatalf("NodeAvailability(no-such-node): %v, want stack.ErrNotFound", err)
	}
	if err := sw.SetNodeAvailability(ctx, "no-such-node", stack.AvailabilityDrain); !errors.Is(err, stack.ErrNotFound) {
		t.Fatalf("SetNodeAvailability(no-such-node): %v, want stack.ErrNotFound", err)
	}
}

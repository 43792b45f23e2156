package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// Errors cross the worker's HTTP API as codes: the client's error matches the
// contract's sentinel and its class with errors.Is (no string parsing), keeps the
// worker's message, and is still a remote error.
func TestHTTPErrorsCarryTheirCode(t *testing.T) {
	n := newFakeNode(t, "n1")
	n.add("web", 7)
	c := &worker.Client{Addr: n.w.Addr()}
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		call         func() error
		reason, kind error
		msg          string
	}{
		{"no such set", func() error { _, err := c.Send(ctx, "nosuch", n.w.Addr()); return err }, node.ErrNoSuchSet, node.ErrNotFound, "no such image set"},
		{"bad set id", func() error { return c.DropSet(ctx, "bad/id") }, node.ErrBadSetID, node.ErrInvalidArgument, "bad image set ID"},
		{"not frozen", func() error { return c.Stop(ctx, "web") }, node.ErrNotFrozen, node.ErrFailedPrecondition, "not frozen"},
		// A release of a container that no longer exists: nothing of it is held (the agent
		// counts it released).
		{"thaw gone", func() error { return c.Thaw(ctx, "gone") }, node.ErrNotFound, node.ErrNotFound, "not found"},
		{"unlock gone", func() error { return c.Unlock(ctx, "gone", nil) }, node.ErrNotFound, node.ErrNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.reason) || !errors.Is(err, tc.kind) || !errors.Is(err, worker.ErrRemote) {
				t.Fatalf("err = %v, want %v (class %v) from a remote worker", err, tc.reason, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want the worker's message (%q)", err, tc.msg)
			}
			if errors.Is(err, node.ErrConflict) {
				t.Fatalf("err = %v matches another class", err)
			}
		})
	}
	// In-process, the worker's own sentinels match the contract's too.
	if err := n.w.DropSet(ctx, ".."); !errors.Is(err, worker.ErrBadSetID) || !errors.Is(err, node.ErrBadSetID) {
		t.Fatalf("in-process DropSet(..) = %v", err)
	}
}

// A set sent to a worker that holds one of that ID already fails with
// node.ErrSetExists (the receiver's 409), which a restore treats as "already moved".
func TestSendToAWorkerHoldingTheSetIsErrSetExists(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", dump.Fake{}), newFakeNode(t, "b")
	a.add("web", 7)
	ctx := context.Background()
	if _, err := a.w.Dump(ctx, "web", "s1.web", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.Send(ctx, "s1.web", b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	// b now holds another set of that ID (its own container's dump, other files): a
	// send of a's is not AlreadyThere, and b refuses it.
	b.add("web", 8)
	if err := b.w.DropSet(ctx, "s1.web"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Dump(ctx, "web", "s1.web", true); err != nil {
		t.Fatal(err)
	}
	_, err := (&worker.Client{Addr: a.w.Addr()}).Send(ctx, "s1.web", b.w.Addr())
	if !errors.Is(err, node.ErrSetExists) || !errors.Is(err, node.ErrConflict) {
		t.Fatalf("send to a worker holding another set of that ID: %v, want node.ErrSetExists", err)
	}
}

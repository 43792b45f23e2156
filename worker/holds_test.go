package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
)

// TestHoldsListsTheJournal: a node's holds, through the HTTP API, are what its journal
// records: which container, locked or frozen, until when, held by a live worker; a
// released container is not listed.
func TestHoldsListsTheJournal(t *testing.T) {
	n := newFakeNode(t, "n1")
	c := n.add("web", 42)
	n.add("db", 43)
	ctx := context.Background()
	var s worker.Holder = &worker.Client{Addr: n.w.Addr()}
	if hs, err := s.Holds(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("holds of an idle node: %+v %v", hs, err)
	}
	deadline := time.Now().Add(time.Minute).Round(time.Millisecond)
	if err := n.w.Lock(ctx, "web", nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Freeze(ctx, "web", deadline); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Freeze(ctx, "db", deadline); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Thaw(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 {
		t.Fatalf("holds = %+v, want web only", hs)
	}
	h := hs[0]
	if h.ContainerID != c.ID || h.Name != "web" || !h.Locked || !h.Frozen || !h.Deadline.Equal(deadline) || !h.OwnerAlive || h.OwnerPid == 0 {
		t.Fatalf("hold = %+v, want web locked and frozen until %v by this live worker", h, deadline)
	}
}

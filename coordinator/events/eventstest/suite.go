// Package eventstest holds the conformance suite every events.Publisher passes.
package eventstest

import (
	"context"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/events"
)

// Publisher checks pub: events published one after the other reach the observer
// (seen: every event observed so far) in order, each with its fields and a time; an
// event with At set keeps it.
func Publisher(t *testing.T, pub events.Publisher, seen func() []events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	want := []events.Event{
		{Kind: events.DrainSeen, Node: "n2"},
		{Kind: events.TaskHeld, Node: "n2", Stack: "bank", Service: "bank_holder", Slot: 3, Container: "abc", Deadline: at.Add(9 * time.Second)},
		{Kind: events.Checkpointed, Node: "n2", Service: "bank_holder", Slot: 3, Set: "drain.bank_holder.3.1", MS: 260},
		{Kind: events.Restored, Node: "n2", Target: "n1", Service: "bank_holder", Slot: 3},
		{Kind: events.HoldTimedOut, Node: "n2", Reason: "checkpoint did not finish within 9s", At: at},
		{Kind: events.RolledBack, Stack: "bank", Snapshot: "bank-1"},
	}
	before := time.Now().Add(-time.Second)
	for _, e := range want {
		if err := pub.Publish(ctx, e); err != nil {
			t.Fatalf("Publish(%s): %v", e.Kind, err)
		}
	}
	var got []events.Event
	for {
		got = seen()
		if len(got) >= len(want) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("observed %d of %d events: %+v", len(got), len(want), got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("observed %d events, published %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if w.At.IsZero() {
			if g.At.Before(before) {
				t.Errorf("event %d (%s): At %v not set to the publish time", i, w.Kind, g.At)
			}
			g.At = time.Time{}
		} else if !g.At.Equal(w.At) {
			t.Errorf("event %d (%s): At %v, want %v kept", i, w.Kind, g.At, w.At)
		}
		g.At, w.At = time.Time{}, time.Time{}
		if !g.Deadline.Equal(w.Deadline) {
			t.Errorf("event %d: deadline %v, want %v", i, g.Deadline, w.Deadline)
		}
		g.Deadline, w.Deadline = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("event %d: got %+v, want %+v", i, g, w)
		}
	}
}

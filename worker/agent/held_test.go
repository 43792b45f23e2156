package agent

import (
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A per-peer unlock leaves the lock entry in place; the next snapshot's lock must time
// its own hold, not the first snapshot's (the release log's held_ms).
func TestHeldSinceForCountsFromThisSnapshotsHold(t *testing.T) {
	var h heldSet
	c := node.Target{ID: "c1"}
	h.set("lock", c, true)
	h.started("lock", c.ID, "s1")
	first, ok := h.sinceFor("lock", c.ID, "s1")
	if !ok {
		t.Fatal("s1's lock not found")
	}
	time.Sleep(2 * time.Millisecond) // two distinct timestamps
	h.set("lock", c, true)           // still held: set keeps the old entry
	h.started("lock", c.ID, "s2")
	second, ok := h.sinceFor("lock", c.ID, "s2")
	if !ok || !second.After(first) {
		t.Fatalf("s2's lock since %v (found %v), want after s1's %v", second, ok, first)
	}
	if _, ok := h.sinceFor("lock", c.ID, "s1"); ok {
		t.Fatal("s1 still reported as holding the lock after s2 took it")
	}
	h.set("lock", c, false)
	if _, ok := h.sinceFor("lock", c.ID, "s2"); ok {
		t.Fatal("a released lock is still reported")
	}
}

package nodeloss

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

var t0 = time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

var (
	up      = Signals{Heartbeat: true, Member: true, Swarm: SwarmReady}
	allDown = Signals{Swarm: SwarmDown}
)

func TestTrackerNeedsEverySignal(t *testing.T) {
	for name, s := range map[string]Signals{
		"heartbeats gone only":         {Member: true, Swarm: SwarmReady},
		"member gone only":             {Heartbeat: true, Swarm: SwarmReady},
		"daemons gone, swarm ready":    {Swarm: SwarmReady},
		"daemons gone, swarm unknown":  {Swarm: SwarmUnknown},
		"daemons gone, swarm unread":   {},
		"swarm down, heartbeats come":  {Heartbeat: true, Swarm: SwarmDown},
		"swarm down, member still":     {Member: true, Swarm: SwarmDown},
		"swarm down, both daemons run": {Heartbeat: true, Member: true, Swarm: SwarmDown},
	} {
		tr := NewTracker(2 * time.Second)
		tr.Observe("n", up, at(0))
		for i := 1; i < 60; i++ {
			if ev := tr.Observe("n", s, at(i)); ev != None {
				t.Fatalf("%s: event %v at %ds, want none: one signal alone must not make a node lost", name, ev, i)
			}
		}
		if st := tr.State("n"); st != Up {
			t.Errorf("%s: state %v, want up", name, st)
		}
	}
}

func TestTrackerLostAfterConfirmOnce(t *testing.T) {
	tr := NewTracker(2 * time.Second)
	tr.Observe("n", up, at(0))
	var lostAt []int
	for i := 1; i <= 10; i++ {
		if tr.Observe("n", allDown, at(i)) == BecameLost {
			lostAt = append(lostAt, i)
		}
	}
	if !reflect.DeepEqual(lostAt, []int{3}) {
		t.Fatalf("lost reported at %v, want once, at 3 s (down since 1 s, confirm 2 s)", lostAt)
	}
	if got := tr.LostNodes(); !reflect.DeepEqual(got, []string{"n"}) {
		t.Fatalf("LostNodes %v", got)
	}
	// Swarm ready again, daemons not back: still lost (nothing to fence with).
	if ev := tr.Observe("n", Signals{Swarm: SwarmReady}, at(11)); ev != None || tr.State("n") != Lost {
		t.Fatalf("swarm ready without daemons: event %v state %v, want none/lost", ev, tr.State("n"))
	}
	if ev := tr.Observe("n", Signals{Heartbeat: true, Swarm: SwarmReady}, at(12)); ev != Returned {
		t.Fatalf("agent back: event %v, want Returned", ev)
	}
	if ev := tr.Observe("n", up, at(13)); ev != None || tr.State("n") != Up {
		t.Fatalf("after return: event %v state %v", ev, tr.State("n"))
	}
	// A second loss is a new loss.
	tr.Observe("n", allDown, at(20))
	if ev := tr.Observe("n", allDown, at(22)); ev != BecameLost {
		t.Fatalf("second loss: event %v, want BecameLost", ev)
	}
}

func TestTrackerFlapping(t *testing.T) {
	tr := NewTracker(3 * time.Second)
	tr.Observe("n", up, at(0))
	// Down, back, down, back ...: never down for 3 s in a row.
	for i := 1; i < 40; i++ {
		s := allDown
		if i%3 == 0 {
			s = Signals{Member: true, Swarm: SwarmDown} // gossip sees it for a moment
		}
		if ev := tr.Observe("n", s, at(i)); ev != None {
			t.Fatalf("flapping node: event %v at %ds, want none", ev, i)
		}
	}
}

func TestTrackerNeverSeenUp(t *testing.T) {
	tr := NewTracker(0)
	for i := 0; i < 5; i++ {
		if ev := tr.Observe("old", allDown, at(i)); ev != None {
			t.Fatalf("a node never seen up was declared lost at %d s", i)
		}
	}
	tr.Observe("n", up, at(0))
	if ev := tr.Observe("n", allDown, at(1)); ev != BecameLost {
		t.Fatalf("confirm 0: event %v, want BecameLost at the first all-down observation", ev)
	}
	if tr.SeenUp("old") || !tr.SeenUp("n") {
		t.Fatalf("SeenUp: old %v n %v, want false true", tr.SeenUp("old"), tr.SeenUp("n"))
	}
}

// A tracker with Grace (a leader that took over after a node died): a node never
// seen up is lost once Grace has passed since the first observation and every signal
// is down; one whose heartbeat arrives within Grace is up; one that swarm does not
// report down is never lost.
func TestTrackerNeverSeenUpGrace(t *testing.T) {
	tr := NewTracker(2 * time.Second)
	tr.Grace = 5 * time.Second
	for i := 0; i <= 4; i++ {
		for _, n := range []string{"dead", "late", "unknown"} {
			s := allDown
			if n == "unknown" {
				s = Signals{Swarm: SwarmUnknown}
			}
			if n == "late" && i >= 3 {
				s = Signals{Heartbeat: true, Swarm: SwarmReady} // its agent's first heartbeat arrives late
			}
			if ev := tr.Observe(n, s, at(i)); ev != None {
				t.Fatalf("%s: event %v at %d s, within the grace period", n, ev, i)
			}
		}
	}
	var lostAt int
	for i := 5; i <= 20 && lostAt == 0; i++ {
		if ev := tr.Observe("unknown", Signals{Swarm: SwarmUnknown}, at(i)); ev != None {
			t.Fatalf("a node swarm does not report down: event %v at %d s", ev, i)
		}
		if ev := tr.Observe("late", Signals{Heartbeat: true, Swarm: SwarmReady}, at(i)); ev != None {
			t.Fatalf("a node whose heartbeat came within grace: event %v at %d s", ev, i)
		}
		if tr.Observe("dead", allDown, at(i)) == BecameLost {
			lostAt = i
		}
	}
	// Grace from 0 to 5 s, then down for Confirm (2 s): lost at 7 s.
	if lostAt != 7 || tr.State("dead") != Lost || tr.SeenUp("dead") {
		t.Fatalf("node never seen up, every signal down: lost at %d s (state %v, seen up %v), want 7 s, lost, not seen up", lostAt, tr.State("dead"), tr.SeenUp("dead"))
	}
}

func mc(svc string, slot int, node string, copies ...string) store.Container {
	c := store.Container{Service: svc, Slot: slot, Node: node, Images: &store.ImageSet{Node: node}}
	for _, n := range copies {
		c.Copies = append(c.Copies, store.Copy{Node: n})
	}
	return c
}

func TestPick(t *testing.T) {
	live := map[string]bool{"n1": true, "n2": true}
	newest := &store.Manifest{ID: "s3", State: store.StateCommitted, CreatedAt: at(30),
		Containers: []store.Container{mc("a", 1, "n1", "n2"), mc("a", 2, "n3")}} // a.2 only on the lost n3
	bad := &store.Manifest{ID: "s2", State: store.StateCommitted, CreatedAt: at(20),
		Containers: []store.Container{mc("a", 1, "n1"), mc("a", 2, "n3", "n1")}}
	bad.Containers[1].Copies[0].Error = "digest mismatch" // its only other copy is bad
	good := &store.Manifest{ID: "s1", State: store.StateCommitted, CreatedAt: at(10),
		Containers: []store.Container{mc("a", 1, "n1", "n3"), mc("a", 2, "n3", "n2")}}
	aborted := &store.Manifest{ID: "s4", State: store.StateAborted, CreatedAt: at(40),
		Containers: []store.Container{mc("a", 1, "n1"), mc("a", 2, "n2")}}
	m, err := Pick([]*store.Manifest{good, aborted, newest, bad}, live)
	if err != nil || m.ID != "s1" {
		t.Fatalf("Pick = %v, %v; want s1 (the newest committed one with every set on a live node)", m, err)
	}
	_, err = Pick([]*store.Manifest{newest, bad}, live)
	if !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Pick with no readable snapshot: %v, want ErrNoSnapshot", err)
	}
	if _, err := Pick(nil, live); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Pick of nothing: %v", err)
	}
}

func TestRan(t *testing.T) {
	m := &store.Manifest{Containers: []store.Container{mc("h", 1, "n1")}}
	if !Ran(m, nil, "n1") || Ran(m, nil, "n2") || !Ran(nil, []string{"n2"}, "n2") || Ran(nil, nil, "n1") {
		t.Fatal("Ran: wrong answer")
	}
}

func TestVictims(t *testing.T) {
	f := Fence{Node: "n3", Snapshot: "s1", At: at(100), Keep: []string{"new1"}}
	found := []Container{
		{ID: "old2", Created: at(50)},
		{ID: "old1"}, // creation unknown: removed
		{ID: "new1", Created: at(50)},
		{ID: "later", Created: at(200)}, // put there after the loss
	}
	if got := Victims(f, found); !reflect.DeepEqual(got, []string{"old1", "old2"}) {
		t.Fatalf("Victims = %v, want [old1 old2]", got)
	}
	if got := Victims(f, nil); len(got) != 0 {
		t.Fatalf("Victims of nothing = %v", got)
	}
	mine, others := Pending([]Fence{f, {Node: "n1"}, {Node: "n3", Snapshot: "s2"}}, "n3")
	if len(mine) != 2 || len(others) != 1 || others[0].Node != "n1" {
		t.Fatalf("Pending: %v / %v", mine, others)
	}
}

func TestMode(t *testing.T) {
	if m, why := Mode("swarm"); m != "swarm" || why != "" {
		t.Fatalf("Mode(swarm) = %q, %q", m, why)
	}
	for _, pm := range []string{"", "exact"} {
		if m, why := Mode(pm); m != "swarm" || !strings.Contains(why, "addresses") {
			t.Fatalf("Mode(%q) = %q, %q: want swarm, saying why", pm, m, why)
		}
	}
}

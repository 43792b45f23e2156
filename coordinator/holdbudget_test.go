package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/holdtime"
)

// A stack's first snapshot is bounded by the configured timeout; the next ones by the
// hold budget of the work its containers did then, and so are their locks' deadlines.
func TestSnapshotDeadlinesFollowTheWork(t *testing.T) {
	budget := holdtime.Budget{Base: 2 * time.Second, PerContainer: 10 * time.Millisecond, Floor: 1 << 30, Max: time.Minute}
	e := newEnvWith(t, func(c *coordinator.Config) { c.SnapshotTimeout = 8 * time.Second; c.Hold = budget }, "lab-1", "lab-2", "lab-3")

	first, err := e.snapshot("first")
	if err != nil {
		t.Fatal(err)
	}
	// ctr1 is on lab-1 (bankStack); the grace the algorithms add is 100 ticks (1 s here).
	if got := e.execs["lab-1"].LockedFor("ctr1"); got < 8*time.Second || got > 9500*time.Millisecond {
		t.Fatalf("first snapshot: ctr1 locked for %v, want the configured 8 s plus the grace", got)
	}

	if _, err := e.snapshot("second"); err != nil {
		t.Fatal(err)
	}
	// The budget of the busiest node of the first snapshot's work.
	work := map[string]holdtime.Work{}
	for _, c := range first.Snapshot.Containers {
		work[c.Node] = work[c.Node].Add(holdtime.Work{Containers: 1, Bytes: c.Images.Bytes()})
	}
	want := budget.Stack(work)
	if want < 2*time.Second || want > 3*time.Second {
		t.Fatalf("test setup: budget %v, want about 2 s", want)
	}
	got := e.execs["lab-1"].LockedFor("ctr1")
	if got > want+1500*time.Millisecond || got < want-500*time.Millisecond {
		t.Fatalf("second snapshot: ctr1 locked for %v, want the budget %v plus the 1 s grace", got, want)
	}

	// A new container (no image in the latest snapshot) falls back to the configured timeout.
	ms, err := e.store.List(context.Background(), "bank")
	if err != nil || len(ms) < 2 {
		t.Fatalf("list: %v, %d", err, len(ms))
	}
	m := *ms[len(ms)-1]
	m.Containers = append(append([]store.Container(nil), m.Containers...), store.Container{Service: "bank_new", Slot: 1, Node: "lab-2"})
	if d, how := coordinator.SnapshotBudget(e.svc, context.Background(), &m); d != 8*time.Second {
		t.Fatalf("with a container never snapshotted: %v (%s), want the configured 8 s", d, how)
	}
}

func TestRestoreHoldFollowsTheSets(t *testing.T) {
	set := func(n int64) *store.ImageSet {
		return &store.ImageSet{Files: []store.File{{Name: "pages-1.img", Size: n}}}
	}
	m := &store.Manifest{Containers: []store.Container{
		{Service: "a", Slot: 1, Images: set(160 << 20)},
		{Service: "a", Slot: 2, Images: set(160 << 20)},
		{Service: "b", Slot: 1, Images: set(16 << 20)},
	}}
	def := holdtime.Default()
	for _, tc := range []struct {
		name    string
		targets map[string]string
		want    time.Duration
	}{
		{"every set on every node", nil, def.For(holdtime.Work{Containers: 3, Bytes: 336 << 20})},
		{"spread: the busiest node", map[string]string{"a.1": "n1", "a.2": "n2", "b.1": "n2"}, def.For(holdtime.Work{Containers: 2, Bytes: 176 << 20})},
		{"only the targets count", map[string]string{"b.1": "n1"}, def.For(holdtime.Work{Containers: 1, Bytes: 16 << 20})},
	} {
		if got := coordinator.RestoreHold(m, tc.targets); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

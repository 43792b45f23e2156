package coordinator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/activity"
)

// Minimal on a stack: the coordinator continues the algorithm from the last committed
// minimal snapshot's record in the store (a restarted coordinator too), so a container whose traffic counters did
// not move is not dumped again (its manifest entry points at the earlier set); rm of
// the earlier snapshot keeps the sets a later one reuses, and rm of the later one then
// drops them.
func TestMinimalReusesIdleContainersAcrossSnapshots(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	st := bankStack()
	nodeOf := map[string]string{}
	for _, c := range st.Containers {
		nodeOf[c.ContainerID] = c.Node
		e.execs[c.Node].SetActivity(c.ContainerID, activity.Counters{RxBytes: 100, TxBytes: 200, CPUNanos: 5,
			Conns: []activity.Conn{{Local: "10.0.0.2:40000", Remote: "10.0.0.3:9000", Sent: 200, Received: 100}}})
	}
	snap := func(id string) *store.Manifest {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: id, Stack: "bank", Algorithm: "minimal"})
		if err != nil {
			t.Fatalf("snapshot %s: %v", id, err)
		}
		if res.Snapshot.State != store.StateCommitted {
			t.Fatalf("snapshot %s: %s (%s)", id, res.Snapshot.State, res.Snapshot.Reason)
		}
		return res.Snapshot
	}
	dumps := func() map[string]int {
		out := map[string]int{}
		for id, n := range nodeOf {
			out[id] = e.execs[n].Dumps(id)
		}
		return out
	}
	setOf := func(m *store.Manifest, ctr string) string {
		for _, c := range m.Containers {
			if c.ContainerID == ctr {
				return filepath.Base(c.Images.Dir)
			}
		}
		t.Fatalf("%s: no container %s", m.ID, ctr)
		return ""
	}
	key := func(ctr string) string {
		for _, c := range st.Containers {
			if c.ContainerID == ctr {
				return fmt.Sprintf("%s.%d", c.Service, c.Slot)
			}
		}
		return ""
	}

	snap("m1")
	// The coordinator restarts between the snapshots: the new one continues minimal
	// from the store alone.
	e.stop()
	if err := <-e.runErr; err != nil {
		t.Fatalf("coordinator stopped with %v", err)
	}
	svc, err := coordinator.New(coordinator.Config{Name: "coord-2", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second, WorkerTimeout: 500 * time.Millisecond, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the second coordinator serves and sees the workers", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 3
	})
	before := dumps()
	// Only ctr1 carries traffic between the two snapshots.
	e.execs[nodeOf["ctr1"]].SetActivity("ctr1", activity.Counters{RxBytes: 150, TxBytes: 260, CPUNanos: 5,
		Conns: []activity.Conn{{Local: "10.0.0.2:40000", Remote: "10.0.0.3:9000", Sent: 260, Received: 150}}})
	m2 := snap("m2")
	after := dumps()
	for id := range nodeOf {
		fresh := after[id] - before[id]
		want, wantSet := 0, node.SetID("m1", key(id))
		if id == "ctr1" {
			want, wantSet = 1, node.SetID("m2", key(id))
		}
		if fresh != want {
			t.Errorf("m2: %s dumped %d times, want %d", id, fresh, want)
		}
		if got := setOf(m2, id); got != wantSet {
			t.Errorf("m2: %s images in %s, want %s", id, got, wantSet)
		}
	}

	// rm m1 keeps the sets m2 reuses.
	res, err := e.remove("m1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "a later snapshot reuses it") {
		t.Errorf("rm m1: warnings %q lack the kept sets", res.Warnings)
	}
	for id, n := range nodeOf {
		if kept := e.execs[n].HasSet(node.SetID("m1", key(id))); kept != (id != "ctr1") {
			t.Errorf("after rm m1: set m1 of %s on %s present=%v", id, n, kept)
		}
	}
	// A third snapshot still reuses them (m2 points at them), nothing moved.
	before = dumps()
	m3 := snap("m3")
	after = dumps()
	for id := range nodeOf {
		if after[id] != before[id] {
			t.Errorf("m3: %s dumped again although idle", id)
		}
		if got, want := setOf(m3, id), setOf(m2, id); got != want {
			t.Errorf("m3: %s images in %s, want %s", id, got, want)
		}
	}
	// A reused set that vanished from its node: that container dumps afresh instead
	// (its worker finds the set gone), the snapshot commits, the others still reuse.
	if err := e.execs[nodeOf["ctr2"]].DropSet(context.Background(), node.SetID("m1", key("ctr2"))); err != nil {
		t.Fatal(err)
	}
	before = dumps()
	m4 := snap("m4")
	after = dumps()
	for id := range nodeOf {
		want, wantSet := 0, setOf(m3, id)
		if id == "ctr2" {
			want, wantSet = 1, node.SetID("m4", key(id))
		}
		if after[id]-before[id] != want || setOf(m4, id) != wantSet {
			t.Errorf("m4: %s dumped %d times into %s, want %d into %s", id, after[id]-before[id], setOf(m4, id), want, wantSet)
		}
	}
	// ... and its new images are its base: the next snapshot reuses them.
	m5 := snap("m5")
	if got, want := setOf(m5, "ctr2"), node.SetID("m4", key("ctr2")); got != want {
		t.Errorf("m5: ctr2 images in %s, want %s", got, want)
	}
	// rm of every later snapshot: the m1 sets nobody points at any more are dropped too.
	for _, id := range []string{"m5", "m4", "m3", "m2"} {
		if _, err := e.remove(id); err != nil {
			t.Fatal(err)
		}
	}
	for id, n := range nodeOf {
		for _, s := range []string{"m1", "m2", "m4"} {
			if e.execs[n].HasSet(node.SetID(s, key(id))) {
				t.Errorf("after rm of every snapshot: set %s of %s still on %s", s, id, n)
			}
		}
	}
}

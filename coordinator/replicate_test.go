package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// progress records the progress events of snapshot id.
func progress(t *testing.T, e *env, id string) func(phase string) []api.Event {
	t.Helper()
	var mu sync.Mutex
	var events []api.Event
	sub, err := e.net.Connect().Subscribe(api.ProgressSubject(id), func(m *bus.Msg) {
		var ev api.Event
		_ = json.Unmarshal(m.Data, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func(phase string) []api.Event {
		mu.Lock()
		defer mu.Unlock()
		var out []api.Event
		for _, ev := range events {
			if ev.Phase == phase {
				out = append(out, ev)
			}
		}
		return out
	}
}

// newReplicaEnv is newEnv on lab-1..3 with the agents' verifier as the cut checker
// and fake nodes that send sets to each other.
func newReplicaEnv(t *testing.T) *env {
	e := newEnvWith(t, func(c *coordinator.Config) { c.Verify = coordinator.AgentVerifier(c.Bus, 5*time.Second) }, "lab-1", "lab-2", "lab-3")
	for n, ex := range e.execs {
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) { e.execs[to].PutSet(set); return false, nil }
		e.cancel[n]()
		e.startAgent(n)
	}
	waitFor(t, "workers with transfer addresses", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		if err != nil || len(st.Workers) != 3 {
			return false
		}
		for _, w := range st.Workers {
			if w.Address == "" {
				return false
			}
		}
		return true
	})
	return e
}

func snapshotReplicas(e *env, id string, n int) (*api.SnapshotResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: id, Stack: "bank", Replicas: n})
}

// TestSnapshotReplicasCopiesEverySet: with replicas 2 every image set is also on one
// other node (spread: no node holds more than its share), the manifest says where,
// inspect --verify checks every copy, and rm removes every copy on every node.
func TestSnapshotReplicasCopiesEverySet(t *testing.T) {
	e := newReplicaEnv(t)
	events := progress(t, e, "rep")
	res, err := snapshotReplicas(e, "rep", 2)
	if err != nil {
		t.Fatalf("snapshot --replicas 2: %v", err)
	}
	m := res.Snapshot
	if m.State != store.StateCommitted || m.Replicas != 2 {
		t.Fatalf("state %s replicas %d; want committed, 2", m.State, m.Replicas)
	}
	perNode := map[string]int{}
	for _, c := range m.Containers {
		set := node.SetID("rep", c.Key())
		if len(c.Copies) != 1 || c.Copies[0].Node == c.Node {
			t.Fatalf("%s on %s: copies %+v; want one on another node", c.Key(), c.Node, c.Copies)
		}
		for _, n := range []string{c.Node, c.Copies[0].Node} {
			if !e.execs[n].HasSet(set) {
				t.Errorf("%s: set %s not on node %s", c.Key(), set, n)
			}
			perNode[n]++
		}
	}
	// 5 sets, 2 copies each, 3 nodes: spread means at most 4 on any node.
	for n, k := range perNode {
		if k > 4 {
			t.Errorf("node %s holds %d sets of the snapshot; want them spread (at most 4 of 10 on 3 nodes): %v", n, k, perNode)
		}
	}
	waitFor(t, "5 copied events", func() bool { return len(events("copied")) == 5 })
	stored, err := e.store.Get(context.Background(), "rep")
	if err != nil || len(stored.Containers[0].Copies) != 1 {
		t.Fatalf("stored manifest does not record the copies: %+v %v", stored, err)
	}

	// inspect --verify checks each copy on its node: a corrupt one is named.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c0 := m.Containers[0]
	_ = e.execs[c0.Copies[0].Node].DropSet(ctx, node.SetID("rep", c0.Key()))
	ins, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "rep", Verify: true})
	if err != nil {
		t.Fatalf("inspect --verify: %v", err)
	}
	bad := 0
	for _, c := range ins.Snapshot.Containers {
		for _, cp := range c.Copies {
			if cp.Error != "" {
				bad++
				if c.Key() != c0.Key() {
					t.Errorf("copy of %s on %s reported bad: %s", c.Key(), cp.Node, cp.Error)
				}
			}
		}
	}
	if bad != 1 {
		t.Errorf("inspect --verify found %d bad copies; want the 1 deleted", bad)
	}

	rm, err := api.Call[api.RemoveResult](ctx, e.client, api.OpRemove, api.RemoveRequest{ID: "rep"})
	if err != nil {
		t.Fatalf("rm: %v", err)
	}
	for _, c := range m.Containers {
		for n, ex := range e.execs {
			if ex.HasSet(node.SetID("rep", c.Key())) {
				t.Errorf("after rm (%+v) set of %s still on %s", rm, c.Key(), n)
			}
		}
	}
}

// TestSnapshotReplicasShortOfNodes: more replicas than nodes commits the snapshot (its
// originals are whole) but says which copies are missing and why.
func TestSnapshotReplicasShortOfNodes(t *testing.T) {
	e, _ := newMigrateEnv(t)
	res, err := snapshotReplicas(e, "short", 4)
	if err == nil || !strings.Contains(err.Error(), coordinator.ErrReplicas.Error()) || !strings.Contains(err.Error(), "3 of 4 copies: not enough live nodes") {
		t.Fatalf("snapshot --replicas 4 on 3 nodes: %v; want the error naming the missing copies", err)
	}
	if res == nil || res.Snapshot.State != store.StateCommitted {
		t.Fatalf("snapshot short of copies: %+v; want it committed", res)
	}
	for _, c := range res.Snapshot.Containers {
		if len(c.Copies) != 2 {
			t.Errorf("%s: %d copies; want 2 (every other node)", c.Key(), len(c.Copies))
		}
	}
	if len(res.Snapshot.Warnings) != 5 || !strings.HasPrefix(res.Snapshot.Warnings[0], "replicas: ") {
		t.Errorf("warnings %q; want one per set", res.Snapshot.Warnings)
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{Stack: "bank", Replicas: 99})
	if !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("replicas 99: %v; want bad request", err)
	}
}

// TestRestoreUsesACopy: the original set of a container deleted by hand on its node,
// a restore replaces it with a healthy copy, says so, and restores; with no healthy
// copy either it refuses before anything is stopped.
func TestRestoreUsesACopy(t *testing.T) {
	e, _ := newMigrateEnv(t)
	res, err := snapshotReplicas(e, "heal", 2)
	if err != nil {
		t.Fatal(err)
	}
	events := progress(t, e, "heal")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c0 := res.Snapshot.Containers[0]
	set := node.SetID("heal", c0.Key())
	_ = e.execs[c0.Node].DropSet(ctx, set)
	if _, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "heal", OnOriginal: true, DiscardRunning: true}); err != nil {
		t.Fatalf("restore with the original set of %s deleted: %v", c0.Key(), err)
	}
	used := events("used-copy")
	waitFor(t, "used-copy event", func() bool { used = events("used-copy"); return len(used) == 1 })
	if used[0].Container != c0.Key() || !strings.Contains(used[0].Message, "copy from "+c0.Copies[0].Node) {
		t.Errorf("used-copy event %+v; want it to name %s and the copy's node %s", used[0], c0.Key(), c0.Copies[0].Node)
	}

	// The node holding a set down: the restore reads the copy, says so.
	res2, err := snapshotReplicas(e, "heal2", 2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })
	events2 := progress(t, e, "heal2")
	e.cancel["lab-3"]()
	waitFor(t, "lab-3's worker seen gone", func() bool {
		st, err := api.Call[api.StatusResult](ctx, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 2
	})
	rr, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "heal2", DiscardRunning: true})
	if err != nil {
		t.Fatalf("restore with lab-3 down: %v", err)
	}
	var onLab3 []string
	for _, c := range res2.Snapshot.Containers {
		if c.Node == "lab-3" {
			onLab3 = append(onLab3, c.Key())
			if rr.Targets[c.Key()] == "lab-3" {
				t.Errorf("%s restored on the dead node lab-3", c.Key())
			}
		}
	}
	waitFor(t, "used-copy events for lab-3's sets", func() bool { return len(events2("used-copy")) == len(onLab3) })
	for _, ev := range events2("used-copy") {
		if !strings.Contains(ev.Message, "node lab-3, which holds the image set, has no live worker: the restore reads the copy on "+ev.Node) {
			t.Errorf("used-copy event %+v; want it to name lab-3 and the copy's node", ev)
		}
	}
	e.startAgent("lab-3")
	waitFor(t, "lab-3 back", func() bool {
		st, err := api.Call[api.StatusResult](ctx, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 3
	})

	// Neither the original nor the copy: refused, naming both.
	_ = e.execs[c0.Node].DropSet(ctx, set)
	_ = e.execs[c0.Copies[0].Node].DropSet(ctx, set)
	_, err = e.svc.Restore(ctx, api.RestoreRequest{ID: "heal", OnOriginal: true, DiscardRunning: true})
	if !errors.Is(err, api.ErrCorrupt) || !strings.Contains(err.Error(), "no copy could replace it") || !strings.Contains(err.Error(), "copy on "+c0.Copies[0].Node) {
		t.Fatalf("restore with no healthy copy: %v; want it refused naming the copy", err)
	}
}

// TestExcludedServiceNotSnapshottedStartedFreshOnRestore: a service the snapshot
// excludes (swarmckpt.exclude) has its containers neither dumped nor in the manifest,
// which records how many it ran; an exact restore, having stopped the whole stack,
// starts it again at that many replicas.
func TestExcludedServiceNotSnapshottedStartedFreshOnRestore(t *testing.T) {
	st := bankStack()
	for i, n := range []string{"lab-1", "lab-2"} {
		st.Containers = append(st.Containers, stack.Container{Service: "bank_web", Slot: i + 1, Node: n,
			ContainerID: fmt.Sprintf("web%d", i+1), Image: "example/web", IPs: []string{fmt.Sprintf("10.1.0.%d", 20+i)}, Networks: []string{"bank_net"}})
	}
	sw := &stack.FakeSwarm{Nodes: []string{"lab-1", "lab-2", "lab-3"}, Network: "bank_net", Subnet: "10.1.0."}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 5, "bank_web": 2}, nil); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *coordinator.Config) {
		c.Resolver = stack.Static{"bank": st}
		c.Stopper = sw
		c.Restorer = &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: c.Bus, AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}
	}, "lab-1", "lab-2", "lab-3")
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "ex", Stack: "bank", Exclude: []string{"bank_web"}})
	if err != nil {
		t.Fatalf("snapshot excluding bank_web: %v", err)
	}
	m := res.Snapshot
	if len(m.Containers) != 5 || m.Excluded["bank_web"] != 2 {
		t.Fatalf("manifest: %d containers, excluded %v; want the 5 holders, bank_web's 2 excluded", len(m.Containers), m.Excluded)
	}
	for _, c := range m.Containers {
		if c.Service == "bank_web" {
			t.Errorf("excluded container %s in the manifest", c.Key())
		}
	}
	for _, id := range []string{"web1", "web2"} {
		for n, ex := range e.execs {
			if ex.Dumps(id) != 0 {
				t.Errorf("excluded container %s dumped on %s", id, n)
			}
		}
	}
	if _, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "ex", OnOriginal: true, DiscardRunning: true}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if h, w := sw.Replicas("bank_holder"), sw.Replicas("bank_web"); h != 0 || w != 2 {
		t.Errorf("after the exact restore: bank_holder at %d, bank_web at %d; want 0 (restored standalone) and 2 (started fresh)", h, w)
	}

	// Every container excluded: refused, nothing locked.
	_, err = api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{Stack: "bank", Exclude: []string{"bank_web", "bank_holder"}})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "nothing to snapshot") {
		t.Errorf("snapshot with every service excluded: %v; want bad request, nothing to snapshot", err)
	}
}

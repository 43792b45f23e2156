package coordinator_test

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// Node loss end to end on fakes: bank (restored in exact mode earlier, slot 1 on
// lab-2, slot 2 on lab-3) is labelled on-node-loss: restore and has a snapshot with
// every set on 2 nodes. lab-3's agent stops: nothing happens while swarm still says
// lab-3 ready. Then swarm says lab-3 down: the leader stores a fence and restores bank
// (in swarm mode: nodeloss.Mode) on lab-1 and lab-2 from the snapshot (slot 2 from its
// copy). When lab-3's agent is back, the old slot-2 container it still has is removed
// and the fence cleared.
func TestNodeLossRestoresAndFences(t *testing.T) {
	net := bus.NewNetwork()
	st := store.NewMemory()
	nodes := []string{"lab-1", "lab-2", "lab-3"}
	execs := map[string]*standaloneExec{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	stopAgent := map[string]context.CancelFunc{}
	startAgent := func(n string) {
		a, err := agent.New(agent.Config{Node: n, Bus: net.Connect(), Worker: execs[n].roles(), Algorithms: lookup,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		stopAgent[n] = func() { acancel(); <-done }
		wg.Add(1)
		go func() { defer wg.Done(); defer close(done); _ = a.Run(actx) }()
	}
	for _, n := range nodes {
		execs[n] = &standaloneExec{Fake: worker.NewFake(n)}
		execs[n].TransferAddr = n // the sets' copies go from fake to fake
		execs[n].SendTo = func(set, to string) (bool, error) { execs[to].PutSet(set); return false, nil }
		startAgent(n)
	}
	for n, name := range map[string]string{"lab-2": "bank_holder-1-old", "lab-3": "bank_holder-2-old"} {
		execs[n].PutSet("seed." + name)
		if _, err := execs[n].Fake.Restore(ctx, "seed."+name, worker.RestoreOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	sw := &stack.FakeSwarm{Nodes: nodes, Network: "bank_net", Subnet: "10.1.0."}
	var startMu sync.Mutex
	started := map[string]string{} // SERVICE.SLOT -> node, of the tasks started from a placed set
	sw.Start = func(tk stack.Task) (string, string, string) {
		ex := execs[tk.Node].Fake
		if p := ex.PlacedTask(tk.Service, tk.Slot); p != nil && p.WaitMap && p.Addresses == nil {
			return "starting", "", "" // the wrapper waits for the address map in create
		}
		id := "ctr-" + tk.TaskID
		if ex.StartTask(tk.Service, tk.Slot, id) != nil {
			startMu.Lock()
			started[tk.Key()] = tk.Node
			startMu.Unlock()
		}
		return "running", id, ""
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", map[string]string{policy.KeyOnNodeLoss: policy.OnNodeLossRestore, policy.KeyReplicas: "2"})
	log := &lockedBuffer{}
	var svc *coordinator.Service
	rec := &events.Recorder{}
	svc, err := coordinator.New(coordinator.Config{Name: "coord-test", Bus: net.Connect(), Store: st,
		Resolver:   resolveWith(func(ctx context.Context) ([]stack.Container, error) { return svc.StandaloneContainers(ctx, "bank") }),
		Algorithms: lookup, TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second,
		WorkerTimeout: 300 * time.Millisecond, Stopper: sw, Policies: labels, PolicyResync: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(log, nil)), Events: rec,
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	client := api.Client{T: net.Connect()}
	waitFor(t, "workers seen", func() bool {
		c, cl := context.WithTimeout(ctx, time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, client, api.OpStatus, api.StatusRequest{})
		if err != nil || len(s.Workers) != 3 {
			return false
		}
		for _, w := range s.Workers {
			if w.Address == "" {
				return false
			}
		}
		return true
	})
	stackPolicy := func() *api.StackPolicy {
		c, cl := context.WithTimeout(ctx, 5*time.Second)
		defer cl()
		r, err := api.Call[api.PolicyResult](c, client, api.OpPolicy, api.PolicyRequest{Stack: "bank"})
		if err != nil || len(r.Stacks) != 1 {
			return nil
		}
		return &r.Stacks[0]
	}
	waitFor(t, "bank's on-node-loss policy", func() bool {
		sp := stackPolicy()
		return sp != nil && sp.Policy != nil && sp.Policy.OnNodeLoss == policy.OnNodeLossRestore
	})
	c, cl := context.WithTimeout(ctx, 20*time.Second)
	res, err := api.Call[api.SnapshotResult](c, client, api.OpSnapshot, api.SnapshotRequest{ID: "bank-s1", Stack: "bank", Replicas: 2})
	cl()
	if err != nil {
		t.Fatalf("snapshot with replicas 2: %v", err)
	}
	for _, c := range res.Snapshot.Containers {
		if len(c.Copies) != 1 {
			t.Fatalf("snapshot %s: %s has copies %+v, want 1", res.Snapshot.ID, c.Key(), c.Copies)
		}
	}

	// Only the heartbeats stop: not lost (swarm still says ready).
	stopAgent["lab-3"]()
	waitFor(t, "lab-3's worker gone from the live workers", func() bool {
		c, cl := context.WithTimeout(ctx, time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(s.Workers) == 2
	})
	time.Sleep(1500 * time.Millisecond) // at least one loss observation (1 s period) with the heartbeats gone, swarm ready
	if m, _ := st.Get(ctx, "bank-s1"); len(m.Restores) != 0 {
		t.Fatalf("restored with only the heartbeats gone (swarm says lab-3 ready): %+v", m.Restores)
	}
	sw.SetNodeState("lab-3", "down")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coordinator log:\n%s", log.String())
		}
	})
	waitForLong(t, 15*time.Second, "bank restored after the loss of lab-3", func() bool {
		return strings.Contains(log.String(), "stack bank rolled back to snapshot bank-s1 (swarm mode)")
	})
	// Swarm mode (an exact stack's lost addresses stay allocated): both slots run as
	// swarm tasks on the survivors, each started from its placed set (slot 2 from its
	// copy: its own node is lab-3).
	startMu.Lock()
	got := maps.Clone(started)
	startMu.Unlock()
	if len(got) != 2 || got["bank_holder.1"] == "lab-3" || got["bank_holder.2"] == "lab-3" || got["bank_holder.1"] == "" || got["bank_holder.2"] == "" {
		t.Fatalf("tasks started from their sets: %v, want bank_holder.1 and .2 on lab-1 or lab-2", got)
	}
	if slices.Contains(execs["lab-2"].Restored(), "bank_holder-1-old") {
		t.Errorf("the earlier exact restore's slot 1 on the live lab-2 was not removed by the restore")
	}
	if sp := stackPolicy(); sp == nil || len(sp.Fences) != 1 || sp.Fences[0].Node != "lab-3" || sp.Fences[0].Snapshot != "bank-s1" {
		t.Fatalf("fences after the restore: %+v, want one for lab-3 from bank-s1", sp)
	}

	// lab-3 comes back with its old container: fenced.
	sw.SetNodeState("lab-3", "ready")
	startAgent("lab-3")
	waitForLong(t, 15*time.Second, "the fence of lab-3 cleared", func() bool {
		sp := stackPolicy()
		return sp != nil && len(sp.Fences) == 0
	})
	x := execs["lab-3"]
	x.mu.Lock()
	removed := slices.Clone(x.removed)
	x.mu.Unlock()
	if !slices.Contains(removed, "bank_holder-2-old") || slices.Contains(x.Restored(), "bank_holder-2-old") {
		t.Fatalf("lab-3 came back and still has bank_holder-2-old (removed %v, restored %v)", removed, x.Restored())
	}
	if m, _ := st.Get(ctx, "bank-s1"); len(m.Restores) != 1 {
		t.Fatalf("restores of bank-s1 after lab-3 came back: %d, want 1 (no second restore)", len(m.Restores))
	}
	// The event stream (swarmckpt events) said each step.
	for _, want := range []events.Event{{Kind: events.NodeLost, Node: "lab-3"}, {Kind: events.RolledBack, Node: "lab-3", Stack: "bank", Snapshot: "bank-s1"},
		{Kind: events.Fenced, Node: "lab-3", Stack: "bank"}} {
		if !slices.ContainsFunc(rec.Events(), func(e events.Event) bool {
			return e.Kind == want.Kind && e.Node == want.Node && (want.Stack == "" || e.Stack == want.Stack) && (want.Snapshot == "" || e.Snapshot == want.Snapshot)
		}) {
			t.Errorf("no %s event for %s %s %s in %+v", want.Kind, want.Node, want.Stack, want.Snapshot, rec.Events())
		}
	}
}

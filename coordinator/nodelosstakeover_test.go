package coordinator_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// Node loss seen by a leader that never saw the node up (issue 16): coordinator 1
// snapshots bank (slot 1 on lab-2, slot 2 on lab-3, replicas 2) and stops. lab-3
// dies while no coordinator runs (its agent stops, swarm says it down). Coordinator 2
// starts on the same store: lab-1 and lab-2 send heartbeats and are not lost; lab-3,
// which it never saw up, is lost after the grace period and bank is restored from
// bank-s1; lab-4, down in swarm all along and never running any of bank, is not
// declared lost. Coordinator 3 then starts with lab-3 still down: bank is fenced
// against lab-3 already (by coordinator 2), so it is not restored a second time and
// lab-3 is not declared lost again.
func TestNodeLossFoundByNewLeader(t *testing.T) {
	net := bus.NewNetwork()
	st := store.NewMemory()
	nodes := []string{"lab-1", "lab-2", "lab-3"}
	execs := map[string]*standaloneExec{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	stopAgent := map[string]context.CancelFunc{}
	for _, n := range nodes {
		execs[n] = &standaloneExec{Fake: worker.NewFake(n)}
		execs[n].TransferAddr = n
		execs[n].SendTo = func(set, to string) (bool, error) { execs[to].PutSet(set); return false, nil }
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
	for n, name := range map[string]string{"lab-2": "bank_holder-1-old", "lab-3": "bank_holder-2-old"} {
		execs[n].PutSet("seed." + name)
		if _, err := execs[n].Fake.Restore(ctx, "seed."+name, worker.RestoreOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	// lab-4 is down in swarm from the start and never ran anything of bank.
	sw := &stack.FakeSwarm{Nodes: append(slices.Clone(nodes), "lab-4"), Network: "bank_net", Subnet: "10.1.0."}
	sw.SetNodeState("lab-4", "down")
	sw.Start = func(tk stack.Task) (string, string, string) {
		ex := execs[tk.Node].Fake
		if p := ex.PlacedTask(tk.Service, tk.Slot); p != nil && p.WaitMap && p.Addresses == nil {
			return "starting", "", "" // the wrapper waits for the address map in create
		}
		id := "ctr-" + tk.TaskID
		ex.StartTask(tk.Service, tk.Slot, id)
		return "running", id, ""
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", map[string]string{policy.KeyOnNodeLoss: policy.OnNodeLossRestore, policy.KeyReplicas: "2"})
	client := api.Client{T: net.Connect()}
	// start runs a coordinator on the shared store until the returned stop.
	start := func(name string, log *lockedBuffer) (stop func()) {
		var svc *coordinator.Service
		svc, err := coordinator.New(coordinator.Config{Name: name, Bus: net.Connect(), Store: st,
			Resolver:   resolveWith(func(ctx context.Context) ([]stack.Container, error) { return svc.StandaloneContainers(ctx, "bank") }),
			Algorithms: lookup, TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second,
			WorkerTimeout: 300 * time.Millisecond, Stopper: sw, Policies: labels, PolicyResync: 50 * time.Millisecond,
			Log:      slog.New(slog.NewTextHandler(log, nil)),
			Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}})
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); defer close(done); _ = svc.Run(cctx) }()
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", name, log.String())
			}
		})
		return func() { ccancel(); <-done }
	}
	workers := func() int {
		c, cl := context.WithTimeout(ctx, time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, client, api.OpStatus, api.StatusRequest{})
		if err != nil {
			return -1
		}
		return len(s.Workers)
	}
	policyOf := func() *api.StackPolicy {
		c, cl := context.WithTimeout(ctx, 5*time.Second)
		defer cl()
		r, err := api.Call[api.PolicyResult](c, client, api.OpPolicy, api.PolicyRequest{Stack: "bank"})
		if err != nil || len(r.Stacks) != 1 {
			return nil
		}
		return &r.Stacks[0]
	}

	log1 := &lockedBuffer{}
	stop1 := start("coord-1", log1)
	waitFor(t, "coordinator 1 sees 3 workers", func() bool { return workers() == 3 })
	waitFor(t, "bank's on-node-loss policy", func() bool {
		sp := policyOf()
		return sp != nil && sp.Policy != nil && sp.Policy.OnNodeLoss == policy.OnNodeLossRestore
	})
	c, cl := context.WithTimeout(ctx, 20*time.Second)
	if _, err := api.Call[api.SnapshotResult](c, client, api.OpSnapshot, api.SnapshotRequest{ID: "bank-s1", Stack: "bank", Replicas: 2}); err != nil {
		t.Fatalf("snapshot with replicas 2: %v", err)
	}
	cl()
	stop1()

	// lab-3 dies while no coordinator runs.
	stopAgent["lab-3"]()
	sw.SetNodeState("lab-3", "down")

	log2 := &lockedBuffer{}
	began := time.Now()
	stop2 := start("coord-2", log2)
	waitForLong(t, 20*time.Second, "bank restored by coordinator 2 after the loss of lab-3 it never saw", func() bool {
		return strings.Contains(log2.String(), "stack bank rolled back to snapshot bank-s1 (swarm mode) after the loss of node lab-3")
	})
	// Not before the grace period (3 worker timeouts): the live nodes' heartbeats had
	// time to arrive, and they were not lost.
	if d := time.Since(began); d < 900*time.Millisecond {
		t.Errorf("lab-3 declared lost %s after coordinator 2 started, before the grace period of 900ms", d)
	}
	for _, n := range []string{"lab-1", "lab-2"} {
		if strings.Contains(log2.String(), "node "+n+" lost") {
			t.Errorf("coordinator 2 declared the live %s lost", n)
		}
	}
	// lab-4, down all along with nothing labelled on it: no node-lost event.
	waitForLong(t, 10*time.Second, "coordinator 2 found nothing to restore for lab-4", func() bool { return nothingFor(log2.String(), "lab-4") })
	if strings.Contains(log2.String(), "node lab-4 lost") {
		t.Errorf("coordinator 2 declared lab-4 lost, which never ran anything labelled")
	}
	if sp := policyOf(); sp == nil || len(sp.Fences) != 1 || sp.Fences[0].Node != "lab-3" || sp.Fences[0].Snapshot != "bank-s1" {
		t.Fatalf("fences after the restore: %+v, want one for lab-3 from bank-s1", sp)
	}
	stop2()

	// Coordinator 3, lab-3 still down: lost again for it, but fenced: left as it is.
	log3 := &lockedBuffer{}
	stop3 := start("coord-3", log3)
	defer stop3()
	waitForLong(t, 20*time.Second, "coordinator 3 finds bank restored after the loss of lab-3, and nothing else to restore", func() bool {
		return strings.Contains(log3.String(), "stack already restored after the loss of this node by an earlier leader") && nothingFor(log3.String(), "lab-3")
	})
	if strings.Contains(log3.String(), "node lab-3 lost") {
		t.Errorf("coordinator 3 declared lab-3 lost again, though bank was restored after its loss already")
	}
	if m, _ := st.Get(ctx, "bank-s1"); m == nil || len(m.Restores) != 1 {
		t.Fatalf("restores of bank-s1: %+v, want exactly 1 (no second restore by coordinator 3)", m)
	}
}

// nothingFor says whether log has the line of a node down since before its
// coordinator led for which no stack was to be restored.
func nothingFor(log, node string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="node down since before this coordinator led: no labelled stack to restore for it`) && strings.Contains(l, "node="+node) {
			return true
		}
	}
	return false
}

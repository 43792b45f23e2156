package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// swarmEnv is three node agents with fake executors on an in-memory bus and a fake
// swarm whose nodes "start" tasks the way the runtime wrapper does: a task whose slot
// has a placed set waits for the address map (when one was announced), then claims it.
type swarmEnv struct {
	net   *bus.Network
	execs map[string]*worker.Fake
	sw    *stack.FakeSwarm
	mu    sync.Mutex
	// started: task SERVICE.SLOT -> what the node restored it from (nil: fresh start).
	started map[string]*worker.FakeTask
	// fresh, when set, makes that task start without its placed set (as on a node
	// without a placement).
	fresh  string
	failed string // that task fails to start
	never  string // that task never runs
	events []api.Event
	sentTo map[string]int // node -> sets Send moved there
}

var swarmNodes = []string{"n1", "n2", "n3"}

func newSwarmEnv(t *testing.T) *swarmEnv {
	e := &swarmEnv{net: bus.NewNetwork(), execs: map[string]*worker.Fake{}, started: map[string]*worker.FakeTask{},
		sentTo: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range swarmNodes {
		ex := worker.NewFake(n)
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) {
			e.mu.Lock()
			e.sentTo[to]++
			e.mu.Unlock()
			e.execs[to].PutSet(set)
			return false, nil
		}
		e.execs[n] = ex
		a, err := agent.New(agent.Config{Node: n, Bus: e.net.Connect(), Worker: ex.Roles(), Algorithms: lookup,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
	}
	e.sw = &stack.FakeSwarm{Nodes: []string{"n2", "n3", "n1"}, Network: "bank_net", Subnet: "10.1.0.", Start: e.start}
	// The agents subscribe in Run: wait until one answers.
	waitFor(t, "agents up", func() bool {
		c, cl := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cl()
		_, err := e.net.Connect().Request(c, node.UnplaceSubject("n3"), []byte(`{"service":"x","slot":1}`))
		return err == nil
	})
	return e
}

func (e *swarmEnv) start(t stack.Task) (string, string, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ex := e.execs[t.Node]
	id := "ctr-" + t.TaskID
	switch t.Key() {
	case e.failed:
		return "failed", "", "starting container failed: swarmckpt-runtime: create: rewrite failed"
	case e.never:
		return "starting", "", ""
	case e.fresh:
		e.started[t.Key()] = nil
		return "running", id, ""
	}
	if p := ex.PlacedTask(t.Service, t.Slot); p != nil && p.WaitMap && p.Addresses == nil {
		return "starting", "", "" // the wrapper waits for the map in create
	}
	e.started[t.Key()] = ex.StartTask(t.Service, t.Slot, id)
	return "running", id, ""
}

// bankManifest: three holders of one service, each dumped on its own node.
func bankManifest() *store.Manifest {
	m := &store.Manifest{ID: "bank-s", Stack: "bank", State: store.StateCommitted}
	for i, n := range swarmNodes {
		m.Containers = append(m.Containers, store.Container{Service: "bank_holder", Slot: i + 1, Node: n,
			IPs: []string{fmt.Sprintf("10.1.0.%d", i+2)}, Networks: []string{"bank_net"},
			Images: &store.ImageSet{Node: n, Durable: true, Files: worker.FakeImageFiles()}})
	}
	return m
}

func (e *swarmEnv) putSets(m *store.Manifest) {
	for _, c := range m.Containers {
		e.execs[c.Images.Node].PutSet(node.SetID(m.ID, c.Key()))
	}
}

func (e *swarmEnv) restorer() *restore.SwarmRestore {
	return &restore.SwarmRestore{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second},
		Swarm: e.sw, TaskTimeout: 3 * time.Second, Poll: 5 * time.Millisecond,
		Events: func(_ context.Context, ev api.Event) { e.mu.Lock(); e.events = append(e.events, ev); e.mu.Unlock() }}
}

// nothingLeft: no placement anywhere, every set back on its home node only, the stack
// scaled to 0.
func (e *swarmEnv) requireUndone(t *testing.T, m *store.Manifest) {
	t.Helper()
	for _, n := range swarmNodes {
		if p := e.execs[n].Placed(); len(p) > 0 {
			t.Errorf("placements left on %s after a failed restore: %v", n, p)
		}
	}
	for _, c := range m.Containers {
		set := node.SetID(m.ID, c.Key())
		for _, n := range swarmNodes {
			if has := e.execs[n].HasSet(set); has != (n == c.Images.Node) {
				t.Errorf("set %s on %s: %v, want only on its home node %s", set, n, has, c.Images.Node)
			}
		}
	}
	if r := e.sw.Replicas("bank_holder"); r != 0 {
		t.Errorf("bank_holder has %d replicas after a failed restore, want 0 (scaled down again)", r)
	}
}

func TestSwarmRestoreRunsTasksFromTheirSetsWithOneAddressMap(t *testing.T) {
	e := newSwarmEnv(t)
	m := bankManifest()
	e.putSets(m)
	out, err := e.restorer().Run(context.Background(), m, swarmNodes, []string{"node.hostname!=n9"})
	if err != nil {
		t.Fatal(err)
	}
	// Swarm placed slot 1 on n2, 2 on n3, 3 on n1 with addresses .10, .11, .12.
	want := map[string]string{"10.1.0.2": "10.1.0.10", "10.1.0.3": "10.1.0.11", "10.1.0.4": "10.1.0.12"}
	if fmt.Sprint(out.Addresses) != fmt.Sprint(want) {
		t.Fatalf("address map %v, want %v", out.Addresses, want)
	}
	for i, n := range []string{"n2", "n3", "n1"} {
		key := fmt.Sprintf("bank_holder.%d", i+1)
		ft := e.started[key]
		if ft == nil {
			t.Fatalf("task %s started fresh, not from its set", key)
		}
		if ft.Set != node.SetID(m.ID, key) || !ft.Locked || !ft.WaitMap || fmt.Sprint(ft.Addresses) != fmt.Sprint(want) {
			t.Errorf("task %s restored from %+v, want set %s, locked, with the whole map", key, ft, node.SetID(m.ID, key))
		}
		if out.Targets[key] != n || out.Containers[key] == "" {
			t.Errorf("outcome for %s: node %q container %q, want node %s", key, out.Targets[key], out.Containers[key], n)
		}
		if e.execs[n].IsLocked(out.Containers[key]) {
			t.Errorf("task %s still locked after the restore", key)
		}
	}
	for _, n := range swarmNodes {
		if p := e.execs[n].Placed(); len(p) > 0 {
			t.Errorf("unused placements left on %s: %v", n, p)
		}
	}
	// Copies are gone; every set is still on its home node (restorable again).
	for _, c := range m.Containers {
		set := node.SetID(m.ID, c.Key())
		for _, n := range swarmNodes {
			has := e.execs[n].HasSet(set)
			if n != c.Images.Node && has {
				t.Errorf("copy of %s left on %s", set, n)
			}
			if n == c.Images.Node && !has {
				t.Errorf("set %s gone from its home node %s: the snapshot is no longer restorable", set, n)
			}
		}
	}
	// The constraint steered the scale-up and was taken off the services afterwards
	// (a second migrate must not find it there).
	removed := false
	for _, ev := range e.events {
		removed = removed || ev.Phase == "constraints-removed" && strings.Contains(ev.Message, "node.hostname!=n9")
	}
	if len(e.sw.Constraints) != 0 || !removed || e.sw.Stops != 1 {
		t.Errorf("constraints left %v, removal reported %v, stops %d: want the constraint removed after the restore, one stop", e.sw.Constraints, removed, e.sw.Stops)
	}
}

func TestSwarmRestoreFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(e *swarmEnv)
		want string
	}{
		{"fresh start is not a restore", func(e *swarmEnv) { e.fresh = "bank_holder.2" }, "did not start from its checkpoint"},
		{"task fails", func(e *swarmEnv) { e.failed = "bank_holder.3" }, "rewrite failed"},
		{"task never runs", func(e *swarmEnv) { e.never = "bank_holder.1" }, "did not all run"},
		{"placement fails", func(e *swarmEnv) {
			e.execs["n2"].FailPlace = map[string]error{"bank_holder.2": errors.New("disk full")}
		}, "disk full"},
		{"scale fails", func(e *swarmEnv) { e.sw.FailScale = errors.New("update out of sequence") }, "out of sequence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSwarmEnv(t)
			m := bankManifest()
			e.putSets(m)
			tc.set(e)
			_, err := e.restorer().Run(context.Background(), m, swarmNodes, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			e.requireUndone(t, m)
			var undone bool
			for _, ev := range e.events {
				undone = undone || ev.Phase == "undone"
			}
			if !undone {
				t.Errorf("no 'undone' event: %+v", e.events)
			}
		})
	}
}

func TestPlanSlotsAndAddressMap(t *testing.T) {
	m := &store.Manifest{ID: "s", Containers: []store.Container{
		{Service: "a", Slot: 5, IPs: []string{"10.0.0.5"}, Networks: []string{"net"}, Images: &store.ImageSet{Node: "n1"}},
		{Service: "a", Slot: 2, IPs: []string{"10.0.0.2"}, Networks: []string{"net"}, Images: &store.ImageSet{Node: "n2"}},
	}}
	plan, replicas, err := restore.PlanSlots(m)
	if err != nil {
		t.Fatal(err)
	}
	if replicas["a"] != 2 || plan[0].Old.Slot != 2 || plan[0].Slot != 1 || plan[1].Old.Slot != 5 || plan[1].Slot != 2 || plan[1].Set != "s.a.5" || plan[1].Home != "n1" {
		t.Fatalf("plan %+v replicas %v: want slots 2,5 -> 1,2", plan, replicas)
	}
	now := time.Now()
	tasks := []stack.Task{
		{Service: "a", Slot: 1, DesiredState: "shutdown", CreatedAt: now, Addresses: []stack.NetAddr{{Network: "net", IP: "10.0.0.99"}}},
		{Service: "a", Slot: 1, DesiredState: "running", CreatedAt: now, Addresses: []stack.NetAddr{{Network: "net", IP: "10.0.0.7"}}},
		{Service: "a", Slot: 2, DesiredState: "running", CreatedAt: now.Add(-time.Hour), Addresses: []stack.NetAddr{{Network: "net", IP: "10.0.0.98"}}},
		{Service: "a", Slot: 2, DesiredState: "ready", CreatedAt: now, Addresses: []stack.NetAddr{{Network: "other", IP: "10.9.0.8"}}},
	}
	cur := restore.CurrentTasks(plan, tasks, now.Add(-time.Second))
	am, missing, err := restore.BuildAddressMap(plan, cur)
	if err != nil || fmt.Sprint(am) != "map[10.0.0.2:10.0.0.7]" || fmt.Sprint(missing) != "[a.2]" {
		t.Fatalf("map %v missing %v err %v: want 10.0.0.2->10.0.0.7 and a.2 missing (no address on its network yet)", am, missing, err)
	}
	tasks[3].Addresses = append(tasks[3].Addresses, stack.NetAddr{Network: "net", IP: "10.0.0.7"})
	cur = restore.CurrentTasks(plan, tasks, now.Add(-time.Second))
	if _, _, err := restore.BuildAddressMap(plan, cur); err == nil || !strings.Contains(err.Error(), "two restored containers") {
		t.Fatalf("one new address for two containers: %v", err)
	}
	if _, _, err := restore.PlanSlots(&store.Manifest{ID: "s", Containers: []store.Container{{ContainerID: "abc", Images: &store.ImageSet{Node: "n"}}}}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("standalone container in swarm mode: %v", err)
	}
}

// TestRestoreModeSwarmThroughTheService: the API's mode field reaches the swarm path;
// the restore is recorded with the nodes swarm chose; bad requests are refused before
// anything is touched.
func TestRestoreModeSwarmThroughTheService(t *testing.T) {
	e, client, st, m := swarmService(t)
	call := func(req api.RestoreRequest) (*api.RestoreResult, error) {
		c, cl := context.WithTimeout(context.Background(), 10*time.Second)
		defer cl()
		return api.Call[api.RestoreResult](c, client, api.OpRestore, req)
	}
	for _, bad := range []api.RestoreRequest{
		{ID: m.ID, Mode: "bogus"},
		{ID: m.ID, Mode: api.ModeSwarm, Targets: map[string]string{"bank_holder.1": "n1"}},
		{ID: m.ID, Mode: api.ModeSwarm, Constraints: []string{"node.hostname==n9"}},
	} {
		if _, err := call(bad); err == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
	if e.sw.Stops != 0 {
		t.Fatalf("a refused request touched the stack (%d stops)", e.sw.Stops)
	}
	res, err := call(api.RestoreRequest{ID: m.ID, Mode: api.ModeSwarm})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != api.ModeSwarm || len(res.Addresses) != 3 || len(res.Containers) != 3 {
		t.Fatalf("result %+v", res)
	}
	got, err := st.Get(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := got.Restores[len(got.Restores)-1]
	if !last.OK || last.Targets["bank_holder.1"] != "n2" || len(last.Targets) != 3 {
		t.Fatalf("restore record %+v, want OK with the nodes swarm chose", last)
	}
}

// TestRestoreModeSwarmSendsSetsOnlyWhereSwarmMayPlace: with node.hostname==n3 (migrate
// --to n3 --mode swarm) every set goes to n3 only, not to every node.
func TestRestoreModeSwarmSendsSetsOnlyWhereSwarmMayPlace(t *testing.T) {
	e, client, _, m := swarmService(t)
	c, cl := context.WithTimeout(context.Background(), 10*time.Second)
	defer cl()
	res, err := api.Call[api.RestoreResult](c, client, api.OpRestore, api.RestoreRequest{ID: m.ID, Mode: api.ModeSwarm, Constraints: []string{"node.hostname==n3"}})
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range res.Targets {
		if n != "n3" {
			t.Errorf("%s restored on %s, want n3", k, n)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// n1's and n2's sets went to n3; nothing went to n1 or n2.
	if e.sentTo["n1"] != 0 || e.sentTo["n2"] != 0 || e.sentTo["n3"] != 2 {
		t.Errorf("sets sent per node: %v, want n3: 2 and none to n1 or n2 (swarm may place only on n3)", e.sentTo)
	}
}

// swarmService is newSwarmEnv with bankManifest's sets in place, a coordinator
// serving the API over the env's bus, and its client.
func swarmService(t *testing.T) (*swarmEnv, api.Client, *store.Memory, *store.Manifest) {
	t.Helper()
	e := newSwarmEnv(t)
	m := bankManifest()
	e.putSets(m)
	st := store.NewMemory()
	if err := st.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	serveRestores(t, e, st, lookup)
	client := api.Client{T: e.net.Connect()}
	return e, client, st, m
}

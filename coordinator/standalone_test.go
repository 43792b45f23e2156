package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// standaloneExec is a fake node whose restored containers (exact mode) are listed the
// way a worker lists them: by the name AgentRestorer gives them (SERVICE-SLOT-SNAPSHOT),
// labelled with their service, on 10.1.0.(SLOT+1).
type standaloneExec struct {
	*worker.Fake
	mu      sync.Mutex
	removed []string
	lists   int // Standalone calls
}

func (x *standaloneExec) Standalone(_ context.Context, stackName string) ([]node.Standalone, error) {
	x.mu.Lock()
	x.lists++
	x.mu.Unlock()
	var out []node.Standalone
	for _, id := range x.Restored() {
		svc, rest, ok := strings.Cut(id, "-")
		if !ok || !strings.HasPrefix(svc, stackName+"_") {
			continue
		}
		slot, _, _ := strings.Cut(rest, "-")
		out = append(out, node.Standalone{ID: id, Name: id, Service: svc, Running: true, Image: "swarmckpt/bank:dev",
			Labels:   map[string]string{"io.swarmckpt.service": svc},
			Networks: []node.StandaloneNet{{Name: "bank_net", IPv4: "10.1.0.1" + slot, Aliases: []string{"holder", svc}}}})
	}
	return out, nil
}

func (x *standaloneExec) RemoveContainer(ctx context.Context, c string) error {
	x.mu.Lock()
	x.removed = append(x.removed, c)
	x.mu.Unlock()
	return x.Fake.RemoveContainer(ctx, c)
}

// roles are the fake's roles with its own Standalone and RemoveContainer.
func (x *standaloneExec) roles() worker.Roles {
	r := x.Fake.Roles()
	r.Inspector, r.Restorer = x, x
	return r
}

// resolveWith resolves stack "bank" as stack.Docker does on a swarm whose services are
// at 0 replicas after an exact restore: from the restored containers alone.
type resolveWith func(ctx context.Context) ([]stack.Container, error)

func (r resolveWith) Resolve(ctx context.Context, name string) (*stack.Stack, error) {
	sa, err := r(ctx)
	if err != nil {
		return nil, err
	}
	s := swarm.Service{ID: "svc-holder"}
	s.Spec.Name = "bank_holder"
	zero := uint64(0)
	s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &zero}
	s.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
	return stack.BuildWith(name, []swarm.Service{s}, nil, nil, sa)
}

// A stack restored in exact mode can be snapshotted again (the restored containers
// are found on their nodes as the SERVICE.SLOT they were restored as), and restored
// again over itself: the earlier restore's containers are removed first (their names
// and addresses would be taken).
func TestRestoredStackSnapshotsAndRestoresAgain(t *testing.T) {
	net := bus.NewNetwork()
	st := store.NewMemory()
	nodes := []string{"lab-1", "lab-2", "lab-3"}
	execs := map[string]*standaloneExec{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range nodes {
		x := &standaloneExec{Fake: worker.NewFake(n)}
		execs[n] = x
		a, err := agent.New(agent.Config{Node: n, Bus: net.Connect(), Worker: x.roles(), Algorithms: lookup,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
	}
	// An earlier exact restore (snapshot "bank-20261201-old") left slot 1 on lab-2 and
	// slot 2 on lab-3.
	for n, name := range map[string]string{"lab-2": "bank_holder-1-old", "lab-3": "bank_holder-2-old"} {
		execs[n].PutSet("seed." + name)
		if _, err := execs[n].Fake.Restore(ctx, "seed."+name, worker.RestoreOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	var svc *coordinator.Service
	svc, err := coordinator.New(coordinator.Config{Name: "coord-test", Bus: net.Connect(), Store: st,
		Resolver:   resolveWith(func(ctx context.Context) ([]stack.Container, error) { return svc.StandaloneContainers(ctx, "bank") }),
		Algorithms: lookup, TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second,
		WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	client := api.Client{T: net.Connect()}
	waitFor(t, "workers seen", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(s.Workers) == 3
	})
	call := func(op string, req, out any) error {
		c, cl := context.WithTimeout(context.Background(), 20*time.Second)
		defer cl()
		switch op {
		case api.OpSnapshot:
			r, err := api.Call[api.SnapshotResult](c, client, op, req)
			if err == nil {
				*out.(**store.Manifest) = r.Snapshot
			}
			return err
		default:
			_, err := api.Call[api.RestoreResult](c, client, op, req)
			return err
		}
	}
	describe := func(m *store.Manifest) string {
		var parts []string
		for _, c := range m.Containers {
			parts = append(parts, fmt.Sprintf("%s@%s/%s/%s", c.Key(), c.Node, c.ContainerID, strings.Join(c.IPs, ",")))
		}
		return strings.Join(parts, " ")
	}

	var m1 *store.Manifest
	if err := call(api.OpSnapshot, api.SnapshotRequest{ID: "bank-r1", Stack: "bank"}, &m1); err != nil {
		t.Fatalf("snapshot of a restored stack: %v", err)
	}
	if got, want := describe(m1), "bank_holder.1@lab-2/bank_holder-1-old/10.1.0.11 bank_holder.2@lab-3/bank_holder-2-old/10.1.0.12"; got != want {
		t.Fatalf("snapshot of the restored stack: %s, want %s", got, want)
	}
	if a := m1.Containers[0].Aliases["bank_net"]; strings.Join(a, ",") != "holder,bank_holder" {
		t.Errorf("recorded aliases %v, want the service's (not the container's short ID)", a)
	}

	// Restore it in exact mode over the running restored stack, on the original nodes.
	listsBefore := map[string]int{}
	for n, x := range execs {
		x.mu.Lock()
		listsBefore[n] = x.lists
		x.mu.Unlock()
	}
	// (DiscardRunning: no checkpoint of what runs first, which resolves the stack, and
	// so lists the restored containers, twice more: counted here is the restore's own.)
	if err := call(api.OpRestore, api.RestoreRequest{ID: "bank-r1", OnOriginal: true, DiscardRunning: true, Targets: map[string]string{"bank_holder.1": "lab-2", "bank_holder.2": "lab-3"}}, nil); err != nil {
		t.Fatalf("exact restore over an exact restore: %v", err)
	}
	for n, old := range map[string]string{"lab-2": "bank_holder-1-old", "lab-3": "bank_holder-2-old"} {
		x := execs[n]
		x.mu.Lock()
		removed := slices.Contains(x.removed, old)
		x.mu.Unlock()
		if !removed || slices.Contains(x.Restored(), old) {
			t.Errorf("%s: the earlier restore's %s was not removed (restored now: %v)", n, old, x.Restored())
		}
		if len(x.Restored()) != 1 {
			t.Errorf("%s runs %v, want exactly the new restore's container", n, x.Restored())
		}
	}
	for n, x := range execs {
		x.mu.Lock()
		lists := x.lists - listsBefore[n]
		x.mu.Unlock()
		if lists != 1 {
			t.Errorf("%s: the restore listed its restored containers %d times, want once (counted for the scale-back and removed from one list)", n, lists)
		}
	}

	// And snapshot the new restore again: the chain goes on.
	var m2 *store.Manifest
	if err := call(api.OpSnapshot, api.SnapshotRequest{ID: "bank-r2", Stack: "bank"}, &m2); err != nil {
		t.Fatalf("snapshot of the restored-again stack: %v", err)
	}
	if got, want := describe(m2), "bank_holder.1@lab-2/bank_holder-1-r1/10.1.0.11 bank_holder.2@lab-3/bank_holder-2-r1/10.1.0.12"; got != want {
		t.Fatalf("second snapshot: %s, want %s", got, want)
	}
}

// StandaloneContainer reads the slot from the io.swarmckpt.slot label, else from the
// name AgentRestorer gives (service dots as dashes); a name that does not tell gives 0.
func TestStandaloneContainerSlot(t *testing.T) {
	for _, tc := range []struct {
		sc   node.Standalone
		want int
	}{
		{node.Standalone{Name: "bank_holder-3-20261202t1700", Service: "bank_holder"}, 3},
		{node.Standalone{Name: "my-app_web-12-abc", Service: "my-app_web"}, 12},
		{node.Standalone{Name: "a_b-c-2-x", Service: "a_b.c"}, 2},
		{node.Standalone{Name: "whatever", Service: "bank_holder", Labels: map[string]string{restore.LabelSlot: "4"}}, 4},
		{node.Standalone{Name: "handmade", Service: "bank_holder"}, 0},
		{node.Standalone{Name: "bank_holder-x-1", Service: "bank_holder"}, 0},
	} {
		c := restore.StandaloneContainer("lab-1", tc.sc)
		if c.Slot != tc.want || c.Node != "lab-1" || c.Service != tc.sc.Service {
			t.Errorf("%+v -> %s slot %d on %s, want slot %d", tc.sc, c.Service, c.Slot, c.Node, tc.want)
		}
	}
	c := restore.StandaloneContainer("lab-2", node.Standalone{ID: "0123456789abcdef", Name: "bank_holder-1-x", Service: "bank_holder",
		Networks: []node.StandaloneNet{{Name: "bank_net", IPv4: "10.1.0.5", IPv6: "fd00::5", Aliases: []string{"0123456789ab", "holder"}}}})
	if strings.Join(c.IPs, ",") != "10.1.0.5,fd00::5" || strings.Join(c.Aliases["bank_net"], ",") != "holder" || strings.Join(c.Networks, ",") != "bank_net" {
		t.Errorf("endpoint: %+v", c)
	}
}

// A swarm-mode restore removes the standalone containers of an earlier exact restore
// in its stop step, after the scale to 0 and before any task is scaled up; a failure to
// remove them undoes the restore (nothing placed, the stack at 0).
func TestSwarmRestoreRemovesStandaloneAfterTheStop(t *testing.T) {
	e := newSwarmEnv(t)
	m := bankManifest()
	e.putSets(m)
	r := e.restorer()
	var stopsAtRemoval []int
	r.RemoveStandalone = func(context.Context) error {
		stopsAtRemoval = append(stopsAtRemoval, e.sw.Stops)
		if n := e.sw.Replicas("bank_holder"); n != 0 {
			t.Errorf("standalone containers removed while bank_holder has %d replicas", n)
		}
		return nil
	}
	if _, err := r.Run(context.Background(), m, swarmNodes, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stopsAtRemoval) != "[1]" {
		t.Fatalf("removal calls (stops done at each) %v, want one, after the stop", stopsAtRemoval)
	}

	e2 := newSwarmEnv(t)
	e2.putSets(m)
	r2 := e2.restorer()
	r2.RemoveStandalone = func(context.Context) error {
		return fmt.Errorf("node n2: remove the containers of an earlier restore of bank: boom")
	}
	_, err := r2.Run(context.Background(), m, swarmNodes, nil)
	if err == nil || !strings.Contains(err.Error(), "earlier restore") {
		t.Fatalf("restore with a failing removal: %v, want the removal's error", err)
	}
	e2.requireUndone(t, m)
	if len(e2.started) != 0 {
		t.Fatalf("tasks started although the removal failed: %v", e2.started)
	}
}

// TestStandaloneListedAfterACoordinatorRestart (issue 21, fault seed 1014): a stack of
// restored (standalone) containers is found by asking the live nodes' agents. A
// coordinator that has just started has heard none of them yet: asked at once (a
// snapshot the CLI sent again to the restarted coordinator), it must wait until the
// agents had the time to be heard, not answer that the stack has no running task.
func TestStandaloneListedAfterACoordinatorRestart(t *testing.T) {
	net := bus.NewNetwork()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	svc, err := coordinator.New(coordinator.Config{Name: "coord-restarted", Bus: net.Connect(), Store: store.NewMemory(),
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: net.Connect(), Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	// The agents (restarted by their supervisors, or just not heard yet) come 150 ms
	// after the coordinator; each runs one restored holder.
	for n, name := range map[string]string{"lab-2": "bank_holder-1-old", "lab-3": "bank_holder-2-old"} {
		x := &standaloneExec{Fake: worker.NewFake(n)}
		x.PutSet("seed." + name)
		if _, err := x.Fake.Restore(ctx, "seed."+name, worker.RestoreOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
		a, err := agent.New(agent.Config{Node: n, Bus: net.Connect(), Worker: x.roles(), Algorithms: lookup,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
			_ = a.Run(ctx)
		}()
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	got, err := svc.StandaloneContainers(lctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range got {
		keys = append(keys, c.Key()+"@"+c.Node)
	}
	if strings.Join(keys, " ") != "bank_holder.1@lab-2 bank_holder.2@lab-3" {
		t.Fatalf("listed right after the coordinator started: %v, want both restored holders (the agents were up 150 ms later)", keys)
	}
}

package coordinator_test

import (
	"context"
	"errors"
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
)

// swarmckpt node drain through the coordinator over fakes: the stack labelled
// on-drain migrate with containers on the node is migrated off it (--from), the
// unlabelled one is left to swarm, and only then is the node set to drain; the
// event stream and the progress say so. activate sets it back; an unknown node is
// not found.
func TestNodeDrainMigratesLabelledStacksThenDrains(t *testing.T) {
	e := &env{t: t, net: bus.NewNetwork(), store: store.NewMemory(), execs: map[string]*worker.Fake{},
		cancel: map[string]context.CancelFunc{}}
	sw := &stack.FakeSwarm{Nodes: []string{"lab-1", "lab-2", "lab-3"}, Network: "bank_net", Subnet: "10.1.0."}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for st, svc := range map[string]string{"bank": "bank_holder", "web": "web_app"} {
		if err := sw.ScaleServices(ctx, st, map[string]uint64{svc: 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", map[string]string{policy.KeyOnDrain: "migrate"})
	labels.Set("web", "web_app", map[string]string{})
	rec := &events.Recorder{}
	svc, err := coordinator.New(coordinator.Config{Name: "coord-drain", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, Stopper: sw, Policies: labels, Events: rec,
		TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second, RecoverWait: 3 * time.Second,
		WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second},
			Events: e.recordEvent}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	rctx, rcancel := context.WithCancel(context.Background())
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = svc.Run(rctx) }()
	for _, n := range sw.Nodes {
		ex := worker.NewFake(n)
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) { e.execs[to].PutSet(set); return false, nil }
		e.execs[n] = ex
		e.startAgent(n)
	}
	t.Cleanup(func() {
		rcancel()
		for _, c := range e.cancel {
			c()
		}
		e.wg.Wait()
	})
	e.client = api.Client{T: e.net.Connect()}
	waitFor(t, "coordinator and workers up", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 3
	})

	var mu sync.Mutex
	var phases []string
	sub, err := e.net.Connect().Subscribe(api.ProgressSubject("drain-1"), func(m *bus.Msg) {
		mu.Lock()
		phases = append(phases, string(m.Data))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	res, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-1", Node: "lab-2", Availability: api.AvailabilityDrain, Mode: api.ModeExact})
	if err != nil {
		t.Fatalf("node drain: %v", err)
	}
	if res.Availability != "drain" || len(res.Migrated) != 1 || res.Migrated[0].Stack != "bank" || res.Migrated[0].Error != "" ||
		len(res.LeftToSwarm) != 1 || res.LeftToSwarm[0] != "web" {
		t.Fatalf("result %+v", res)
	}
	if a, _ := sw.NodeAvailability(ctx, "lab-2"); a != "drain" {
		t.Fatalf("lab-2 is %s after node drain", a)
	}
	m, err := e.store.Get(ctx, res.Migrated[0].Snapshot)
	if err != nil || m.State != store.StateCommitted {
		t.Fatalf("the migration's snapshot %s: %+v %v", res.Migrated[0].Snapshot, m, err)
	}
	if _, ok := rec.Wait(ctx, func(ev events.Event) bool {
		return ev.Kind == events.Migrated && ev.Stack == "bank" && ev.Node == "lab-2"
	}); !ok {
		t.Fatalf("no migrated event: %+v", rec.Events())
	}
	if _, ok := rec.Wait(ctx, func(ev events.Event) bool {
		return ev.Kind == events.NodeDrain && strings.HasPrefix(ev.Reason, "drained")
	}); !ok {
		t.Fatalf("no node-drain event: %+v", rec.Events())
	}
	waitFor(t, "progress of the drain, with the migration's", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(phases, "\n")
		return strings.Contains(all, `"phase":"planned"`) && strings.Contains(all, `"phase":"committed"`) && strings.Contains(all, `"phase":"drained"`)
	})

	res, err = api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{Node: "lab-2", Availability: api.AvailabilityActive})
	if err != nil || res.Availability != "active" {
		t.Fatalf("node activate: %+v %v", res, err)
	}
	if a, _ := sw.NodeAvailability(ctx, "lab-2"); a != "active" {
		t.Fatalf("lab-2 is %s after node activate", a)
	}
	if _, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{Node: "lab-9", Availability: api.AvailabilityDrain}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("drain of an unknown node: %v, want not found", err)
	}
	if _, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{Node: "lab-2", Availability: "pause"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("availability pause: %v, want bad request", err)
	}
}

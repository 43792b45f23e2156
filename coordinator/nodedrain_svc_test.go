package coordinator_test

import (
	"context"
	"errors"
	"fmt"
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
)

// drainingSwarm is a FakeSwarm that, as swarm does, reschedules a node's tasks when
// it is set to drain; then (when set) stops runs for each task marked for shutdown.
// Its Tasks lists only the stack's (the services named STACK_*), as a swarm does.
type drainingSwarm struct {
	*stack.FakeSwarm
	mu    sync.Mutex
	stops func(old []stack.Task)
}

func (d *drainingSwarm) Tasks(ctx context.Context, stackName string) ([]stack.Task, error) {
	all, err := d.FakeSwarm.Tasks(ctx, stackName)
	return slices.DeleteFunc(all, func(t stack.Task) bool { return !strings.HasPrefix(t.Service, stackName+"_") }), err
}

func (d *drainingSwarm) SetNodeAvailability(ctx context.Context, node, availability string) error {
	if err := d.FakeSwarm.SetNodeAvailability(ctx, node, availability); err != nil {
		return err
	}
	if availability == stack.AvailabilityDrain {
		old := d.Reschedule(node)
		d.mu.Lock()
		stops := d.stops
		d.mu.Unlock()
		if stops != nil {
			stops(old)
		}
	}
	return nil
}

// nodeDrainEnv runs a coordinator (with its drain controller) and agents on lab-1..3
// over fakes: stack bank (bank_holder x3, labelled on-drain migrate with extra labels
// bankLabels) and web (web_app x3, unlabelled).
// opts change the coordinator's configuration.
func nodeDrainEnv(t *testing.T, bankLabels map[string]string, opts ...func(*coordinator.Config)) (*env, *drainingSwarm, *events.Recorder, context.Context) {
	e := &env{t: t, net: bus.NewNetwork(), store: store.NewMemory(), execs: map[string]*worker.Fake{},
		cancel: map[string]context.CancelFunc{}}
	sw := &drainingSwarm{FakeSwarm: &stack.FakeSwarm{Nodes: []string{"lab-1", "lab-2", "lab-3"}, Network: "bank_net", Subnet: "10.1.0."}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	for st, svc := range map[string]string{"bank": "bank_holder", "web": "web_app"} {
		if err := sw.ScaleServices(ctx, st, map[string]uint64{svc: 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	labels := &stack.FakeLabels{}
	bl := map[string]string{policy.KeyOnDrain: "migrate"}
	for k, v := range bankLabels {
		bl[k] = v
	}
	labels.Set("bank", "bank_holder", bl)
	labels.Set("web", "web_app", map[string]string{})
	rec := &events.Recorder{}
	cfg := coordinator.Config{Name: "coord-drain", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, Stopper: sw, Policies: labels, Events: rec,
		TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second, RecoverWait: 3 * time.Second,
		WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second},
			Events: e.recordEvent}}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := coordinator.New(cfg)
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
	return e, sw, rec, ctx
}

// swarmckpt node drain through the coordinator over fakes, exact mode: the stack
// labelled on-drain migrate with containers on the node is migrated off it (--from),
// the unlabelled one is left to swarm, and only then is the node set to drain; the
// event stream and the progress say so. activate sets it back; an unknown node is
// not found.
func TestNodeDrainMigratesLabelledStacksThenDrains(t *testing.T) {
	e, sw, rec, ctx := nodeDrainEnv(t, nil)

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

// bankOn lists bank's running tasks by node.
func bankOn(t *testing.T, ctx context.Context, sw *drainingSwarm) map[string][]stack.Task {
	t.Helper()
	tasks, err := sw.Tasks(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]stack.Task{}
	for _, tk := range tasks {
		if tk.Service == "bank_holder" && tk.DesiredState == "running" && tk.State == "running" {
			out[tk.Node] = append(out[tk.Node], tk)
		}
	}
	return out
}

// holdStops makes the fake swarm's stops of the drained node's tasks go through the
// fake runtime wrapper: an armed task's stop is held (the agent reports it).
func holdStops(e *env, sw *drainingSwarm) *[]string {
	var mu sync.Mutex
	held := &[]string{}
	sw.mu.Lock()
	sw.stops = func(old []stack.Task) {
		for _, tk := range old {
			if e.execs[tk.Node].HoldStop(tk.ContainerID, "15") {
				mu.Lock()
				*held = append(*held, tk.ContainerID)
				mu.Unlock()
			}
		}
	}
	sw.mu.Unlock()
	return held
}

// swarmckpt node drain, swarm mode (the stack's default): the drain hold path. The
// labelled tasks on the node are armed, the node is set to drain, each held task is
// checkpointed and its replacement elsewhere runs restored from its set, with its
// downtime reported; the holders on the other nodes never stop (same task, same
// container, no stack stop), and the unlabelled stack is left to swarm.
func TestNodeDrainSwarmModeMovesOnlyTheTasksOnTheNode(t *testing.T) {
	e, sw, rec, ctx := nodeDrainEnv(t, nil)
	before := bankOn(t, ctx, sw)
	if len(before["lab-2"]) == 0 {
		t.Fatalf("no bank task on lab-2: %+v", before)
	}
	held := holdStops(e, sw)
	var mu sync.Mutex
	var phases []string
	sub, err := e.net.Connect().Subscribe(api.ProgressSubject("drain-2"), func(m *bus.Msg) {
		mu.Lock()
		phases = append(phases, string(m.Data))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	res, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-2", Node: "lab-2", Availability: api.AvailabilityDrain})
	if err != nil {
		t.Fatalf("node drain: %v", err)
	}
	if res.Availability != "drain" || len(res.Migrated) != 1 || res.Migrated[0].Stack != "bank" || res.Migrated[0].Snapshot != "" ||
		len(res.LeftToSwarm) != 1 || res.LeftToSwarm[0] != "web" {
		t.Fatalf("result %+v", res)
	}
	m := res.Migrated[0]
	if m.Moved != len(before["lab-2"]) || len(m.Tasks) != m.Moved {
		t.Fatalf("moved %d tasks %+v, want the %d bank tasks that were on lab-2", m.Moved, m.Tasks, len(before["lab-2"]))
	}
	for _, tk := range m.Tasks {
		if tk.Fresh || tk.Target == "" || tk.Target == "lab-2" || !strings.HasPrefix(tk.Set, "drain.bank_holder.") || tk.DowntimeMS < 0 {
			t.Errorf("task %+v: want moved off lab-2 from its drain set, with its downtime", tk)
		}
	}
	for _, tk := range before["lab-2"] {
		v, ok := e.execs["lab-2"].Verdict(tk.ContainerID)
		if !ok || v.Outcome != "checkpointed" {
			t.Errorf("%s's held stop: verdict %+v %v, want checkpointed", tk.ContainerID, v, ok)
		}
	}
	if len(*held) != len(before["lab-2"]) {
		t.Errorf("held stops %v, want exactly the %d bank tasks on lab-2 (web is not armed)", *held, len(before["lab-2"]))
	}
	// The holders elsewhere never stopped: same tasks, same containers, running.
	after := bankOn(t, ctx, sw)
	for _, n := range []string{"lab-1", "lab-3"} {
		for _, tk := range before[n] {
			if !slices.ContainsFunc(after[n], func(a stack.Task) bool { return a.TaskID == tk.TaskID && a.ContainerID == tk.ContainerID }) {
				t.Errorf("holder %s (task %s) on %s stopped: after the drain %s runs %+v", tk.ContainerID, tk.TaskID, n, n, after[n])
			}
		}
	}
	if sw.Stops != 0 {
		t.Errorf("the stack was stopped %d times, want never", sw.Stops)
	}
	if _, ok := rec.Wait(ctx, func(ev events.Event) bool {
		return ev.Kind == events.Migrated && ev.Stack == "bank" && ev.Node == "lab-2"
	}); !ok {
		t.Fatalf("no migrated event: %+v", rec.Events())
	}
	waitFor(t, "progress: armed, draining, restored, drained", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(phases, "\n")
		return strings.Contains(all, `"phase":"armed"`) && strings.Contains(all, `"phase":"draining"`) &&
			strings.Contains(all, `"phase":"restored"`) && strings.Contains(all, " down ") && strings.Contains(all, `"phase":"drained"`)
	})
}

// A held task whose checkpoint fails is released (swarm restarts it fresh): the
// drain reports it by name and fails (exit 1), the node drained; the others moved.
func TestNodeDrainSwarmModeReportsAFreshTask(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	before := bankOn(t, ctx, sw)
	if len(before["lab-2"]) == 0 {
		t.Fatalf("no bank task on lab-2: %+v", before)
	}
	bad := before["lab-2"][0]
	e.execs["lab-2"].FailDump[bad.ContainerID] = errors.New("injected dump failure")
	holdStops(e, sw)
	res, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-3", Node: "lab-2", Availability: api.AvailabilityDrain})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailed || !strings.Contains(err.Error(), fmt.Sprintf("%s slot %d", bad.Service, bad.Slot)) ||
		!strings.Contains(err.Error(), "injected dump failure") {
		t.Fatalf("node drain with a failing checkpoint: %v, want failed naming %s slot %d and why", err, bad.Service, bad.Slot)
	}
	if a, _ := sw.NodeAvailability(ctx, "lab-2"); a != "drain" {
		t.Fatalf("lab-2 is %s, want drain (the drain went on; only that task restarts fresh)", a)
	}
	_ = res
}

// A stack labelled swarmckpt.migration: direct is drained with copy direct (issue
// 19): each held task's set is dumped straight into its replacement's node, the
// source keeps none; the drain result says direct.
func TestNodeDrainSwarmModeDirectByLabel(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, map[string]string{policy.KeyMigration: "direct"})
	before := bankOn(t, ctx, sw)
	if len(before["lab-2"]) == 0 {
		t.Fatalf("no bank task on lab-2: %+v", before)
	}
	holdStops(e, sw)
	res, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-d", Node: "lab-2", Availability: api.AvailabilityDrain})
	if err != nil {
		t.Fatalf("node drain: %v", err)
	}
	if len(res.Migrated) != 1 || len(res.Migrated[0].Tasks) != len(before["lab-2"]) {
		t.Fatalf("result %+v, want bank's %d tasks on lab-2 moved", res, len(before["lab-2"]))
	}
	for _, tk := range res.Migrated[0].Tasks {
		if tk.Fresh || tk.Copy != api.CopyDirect || tk.Target == "" || tk.Target == "lab-2" {
			t.Errorf("task %+v: want moved off lab-2, copied direct", tk)
			continue
		}
		if e.execs["lab-2"].HasSet(tk.Set) || !e.execs[tk.Target].HasSet(tk.Set) {
			t.Errorf("set %s: on lab-2 %v (want false), on target %s %v (want true)", tk.Set, e.execs["lab-2"].HasSet(tk.Set), tk.Target, e.execs[tk.Target].HasSet(tk.Set))
		}
	}
}

// A direct move whose set cannot be placed for the replacement (swarm then starts it
// fresh) keeps the set on the target, its only copy, and says so by name.
func TestNodeDrainSwarmModeDirectUnplacedKeepsTheSet(t *testing.T) {
	e, sw, rec, ctx := nodeDrainEnv(t, map[string]string{policy.KeyMigration: "direct"})
	before := bankOn(t, ctx, sw)
	if len(before["lab-2"]) == 0 {
		t.Fatalf("no bank task on lab-2: %+v", before)
	}
	for _, ex := range e.execs {
		ex.FailPlace = map[string]error{}
		for _, tk := range before["lab-2"] {
			ex.FailPlace[fmt.Sprintf("%s.%d", tk.Service, tk.Slot)] = errors.New("injected place failure")
		}
	}
	holdStops(e, sw)
	_, err := api.Call[api.NodeResult](ctx, e.client, api.OpNode, api.NodeRequest{ID: "drain-u", Node: "lab-2", Availability: api.AvailabilityDrain})
	if err == nil || !strings.Contains(err.Error(), "injected place failure") {
		t.Fatalf("node drain whose placements fail: %v, want the failure named", err)
	}
	ev, ok := rec.Wait(ctx, func(ev events.Event) bool {
		return ev.Kind == events.Released && strings.Contains(ev.Reason, "copy direct: its only copy")
	})
	if !ok {
		t.Fatalf("no released event saying the set is kept on the target: %+v", rec.Events())
	}
	var set, target string
	for _, x := range rec.Events() {
		if x.Kind == events.Checkpointed && x.Service == ev.Service && x.Slot == ev.Slot {
			set = x.Set
		}
	}
	for n, ex := range e.execs {
		if set != "" && ex.HasSet(set) {
			target = n
		}
	}
	if set == "" || target == "" || target == "lab-2" || !strings.Contains(ev.Reason, "node "+target) || !strings.Contains(ev.Reason, set) {
		t.Fatalf("set %q kept on %q; released event %+v: want the set kept on the target and named there", set, target, ev)
	}
}

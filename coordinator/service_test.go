package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/blocking"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/algorithms/uncoordinated"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func lookup(name string) (algorithms.Algorithm, error) { return registry.Lookup(name) }

// env is a coordinator, three node agents with fake executors, an in-memory bus and
// store: the whole control plane in one process.
type env struct {
	t      *testing.T
	net    *bus.Network
	store  *store.Memory
	svc    *coordinator.Service
	execs  map[string]*worker.Fake
	cancel map[string]context.CancelFunc
	client api.Client
	stop   context.CancelFunc
	wg     sync.WaitGroup

	evMu   sync.Mutex
	events []api.Event // the restorer's progress events, where the env records them

	runErr chan error // what the coordinator's Run returned

	// wrapHolder, when set, replaces the Holder the agents started after it use
	// (node, the fake's Holder).
	wrapHolder func(node string, h worker.Holder) worker.Holder
}

// recordEvent is a restorer's Events hook that keeps every event.
func (e *env) recordEvent(_ context.Context, ev api.Event) {
	e.evMu.Lock()
	defer e.evMu.Unlock()
	e.events = append(e.events, ev)
}

// eventsOf returns the recorded events of phase.
func (e *env) eventsOf(phase string) []api.Event {
	e.evMu.Lock()
	defer e.evMu.Unlock()
	var out []api.Event
	for _, ev := range e.events {
		if ev.Phase == phase {
			out = append(out, ev)
		}
	}
	return out
}

func bankStack() *stack.Stack {
	st := &stack.Stack{Name: "bank"}
	for i, n := range []string{"lab-1", "lab-2", "lab-3", "lab-1", "lab-2"} {
		st.Containers = append(st.Containers, stack.Container{Service: "bank_holder", Slot: i + 1, Node: n,
			ContainerID: fmt.Sprintf("ctr%d", i+1), Image: "swarmckpt/bank:dev", IPs: []string{fmt.Sprintf("10.1.0.%d", i+2)}, Networks: []string{"bank_net"}})
	}
	return st
}

func newEnv(t *testing.T, nodes ...string) *env { return newEnvWith(t, nil, nodes...) }

// newEnvWith is newEnv with the coordinator's config changed by edit (nil: none).
func newEnvWith(t *testing.T, edit func(*coordinator.Config), nodes ...string) *env {
	return newEnvOn(t, bus.NewNetwork(), edit, nodes...)
}

// newEnvOn is newEnvWith on the in-memory network net.
func newEnvOn(t *testing.T, net *bus.Network, edit func(*coordinator.Config), nodes ...string) *env {
	e := &env{t: t, net: net, store: store.NewMemory(), execs: map[string]*worker.Fake{},
		cancel: map[string]context.CancelFunc{}, runErr: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	cfg := coordinator.Config{Name: "coord-test", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second,
		WorkerTimeout: 500 * time.Millisecond, Log: quiet()}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.runErr <- svc.Run(ctx) }()
	for _, n := range nodes {
		e.startAgent(n)
	}
	e.client = api.Client{T: e.net.Connect()}
	t.Cleanup(func() {
		cancel()
		for _, c := range e.cancel {
			c()
		}
		e.wg.Wait()
	})
	// Wait for the coordinator to serve and every worker to be seen.
	waitFor(t, "coordinator and workers up", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == len(nodes)
	})
	return e
}

func (e *env) startAgent(node string) {
	ex, ok := e.execs[node]
	if !ok {
		ex = worker.NewFake(node)
		e.execs[node] = ex
	}
	roles := ex.Roles()
	if e.wrapHolder != nil {
		roles.Holder = e.wrapHolder(node, roles.Holder)
	}
	a, err := agent.New(agent.Config{Node: node, Bus: e.net.Connect(), Worker: roles, Algorithms: lookup,
		TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Stopping an agent returns once it stopped: a request sent after it is not answered
	// by it (TestRemoveWithADeadNode once saw the agent drop a set after its cancel).
	e.cancel[node] = func() { cancel(); <-done }
	e.wg.Add(1)
	go func() { defer e.wg.Done(); defer close(done); _ = a.Run(ctx) }()
}

func (e *env) held() []string {
	var out []string
	for _, ex := range e.execs {
		out = append(out, ex.Held()...)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) snapshot(id string) (*api.SnapshotResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: id, Stack: "bank"})
}

func TestSnapshotCommitsWithEveryImageSetDurable(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	var mu sync.Mutex
	var events []api.Event
	sub, err := e.net.Connect().Subscribe(api.ProgressSubject("snap-1"), func(m *bus.Msg) {
		var ev api.Event
		_ = json.Unmarshal(m.Data, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	res, err := e.snapshot("snap-1")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	m := res.Snapshot
	if m.State != store.StateCommitted || m.Epoch != 1 {
		t.Fatalf("state %s epoch %d, want committed epoch 1 (reason %q)", m.State, m.Epoch, m.Reason)
	}
	if err := m.Complete(); err != nil {
		t.Fatalf("committed manifest incomplete: %v", err)
	}
	stored, err := e.store.Get(context.Background(), "snap-1")
	if err != nil || stored.State != store.StateCommitted || len(stored.Containers) != 5 {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	for _, c := range bankStack().Containers {
		if n := e.execs[c.Node].Dumps(c.ContainerID); n != 1 {
			t.Errorf("%s dumped %d times, want 1", c.ContainerID, n)
		}
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })
	waitFor(t, "committed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			if ev.Phase == "committed" {
				return true
			}
		}
		return false
	})
	// The lock is free again: a second snapshot gets the next epoch.
	res2, err := e.snapshot("snap-2")
	if err != nil || res2.Snapshot.Epoch != 2 {
		t.Fatalf("second snapshot: %+v %v", res2, err)
	}
	// ls and inspect through the API.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := api.Call[api.ListResult](ctx, e.client, api.OpList, api.ListRequest{Stack: "bank"})
	if err != nil || len(ls.Snapshots) != 2 {
		t.Fatalf("list: %+v %v", ls, err)
	}
	if h := ls.Snapshots[1]; len(h.Containers) != 0 || h.NContainers != 5 || h.ImageBytes == 0 {
		t.Fatalf("ls sent %d containers, n_containers %d, image_bytes %d: want the header only, 5 containers and their bytes", len(h.Containers), h.NContainers, h.ImageBytes)
	}
	_, err = api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "nope"})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("inspect missing: %v, want not found", err)
	}
}

func TestSnapshotRefusedWhenANodeHasNoWorker(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2") // lab-3 has no worker
	res, err := e.snapshot("snap-x")
	if !errors.Is(err, api.ErrNoWorker) || !strings.Contains(err.Error(), "lab-3") {
		t.Fatalf("err = %v, want no live worker on lab-3", err)
	}
	e.requireRefusedUntouched(t, res) // nospace_test.go
}

func TestSnapshotAbortsWhenADumpFailsAndReleasesEveryone(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	e.execs["lab-3"].FailDump["ctr3"] = errors.New("criu: dump failed: unsupported resource")
	_, err := e.snapshot("snap-f")
	if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "unsupported resource") {
		t.Fatalf("err = %v, want aborted naming the cause", err)
	}
	// It returns once the nodes report every container released, and says so.
	if !strings.Contains(err.Error(), "every container was released") {
		t.Errorf("err = %v, want it to say every container was released", err)
	}
	if h := e.held(); len(h) > 0 {
		t.Errorf("still held when the aborted snapshot returned: %v", h)
	}
	m, _ := e.store.Get(context.Background(), "snap-f")
	if m.State != store.StateAborted {
		t.Fatalf("stored state %s", m.State)
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })
}

func TestUserAbortDuringDump(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	defer close(stall)
	e.execs["lab-2"].Stall["ctr2"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-c"); errc <- err }()
	waitFor(t, "snapshot running", func() bool {
		m, err := e.store.Get(context.Background(), "snap-c")
		return err == nil && m.State == store.StateDumping
	})
	// A concurrent snapshot of the same stack is refused.
	if _, err := e.snapshot("snap-c2"); !errors.Is(err, api.ErrBusy) {
		t.Fatalf("concurrent snapshot: %v, want busy", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := api.Call[api.AbortResult](ctx, e.client, api.OpAbort, api.AbortRequest{ID: "snap-c", Reason: "interrupted (Ctrl-C)"}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "Ctrl-C") {
			t.Fatalf("snapshot ended with %v, want aborted by Ctrl-C", err)
		}
		// The abort request is a message of its own: the reason is the user's, not a
		// failure pinned on some container.
		if m, _ := e.store.Get(context.Background(), "snap-c"); m == nil || m.Reason != "interrupted (Ctrl-C)" {
			t.Errorf("stored reason %q, want exactly the user's", m.Reason)
		}
		// ctr2, stuck in its dump, is still frozen: the error says so, and where.
		if !strings.Contains(err.Error(), "still held") || !strings.Contains(err.Error(), "bank_holder.2 on lab-2: frozen") {
			t.Errorf("snapshot ended with %v, want it to name bank_holder.2 on lab-2 as still held", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot did not end after abort")
	}
	// ctr2 is still stuck in its dump; everything else is released.
	waitFor(t, "others released", func() bool {
		for _, h := range e.held() {
			if !strings.HasSuffix(h, ":ctr2") {
				return false
			}
		}
		return true
	})
}

func TestWorkerDeathAbortsItsSnapshots(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	defer close(stall)
	e.execs["lab-3"].Stall["ctr3"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-d"); errc <- err }()
	waitFor(t, "snapshot dumping", func() bool {
		m, err := e.store.Get(context.Background(), "snap-d")
		return err == nil && m.State == store.StateDumping
	})
	e.cancel["lab-3"]() // the worker goes away
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "lab-3") {
			t.Fatalf("snapshot ended with %v, want aborted naming lab-3", err)
		}
		// An abort request of its own, not a failure pinned on the stack's first container.
		if m, _ := e.store.Get(context.Background(), "snap-d"); m == nil || !strings.HasPrefix(m.Reason, "node lab-3 left the cluster") {
			t.Errorf("stored reason %q, want it to start with the node's departure", m.Reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot not aborted after its worker died")
	}
	waitFor(t, "containers of live nodes released", func() bool {
		return len(e.execs["lab-1"].Held()) == 0 && len(e.execs["lab-2"].Held()) == 0
	})
}

func TestRestartedCoordinatorAbortsUnfinishedSnapshots(t *testing.T) {
	st := store.NewMemory()
	// What a coordinator killed mid-snapshot leaves behind: a dumping manifest whose
	// blocking record says active.
	alg := blocking.Algorithm()
	mach := alg.NewCoordinator(algorithms.Config{FirstEpoch: 1})
	m := &store.Manifest{ID: "snap-k", Stack: "bank", Algorithm: "blocking", State: store.StatePreparing, Epoch: 1,
		Coordinator: "dead", CreatedAt: time.Now()}
	for _, c := range bankStack().Containers {
		m.Containers = append(m.Containers, store.Container{Service: c.Service, Slot: c.Slot, Node: c.Node, ContainerID: c.ContainerID})
	}
	if err := st.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	_ = mach
	if _, err := st.LockStack(context.Background(), "bank", "dead/snap-k", time.Minute); err != nil {
		t.Fatal(err)
	}
	m.State = store.StateDumping
	m.Record = []byte(`{"algorithm":"blocking","epoch":1,"snapshot":"snap-k","phase":"active","containers":[{"id":"ctr1","node":"lab-1"}]}`)
	if err := st.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	net := bus.NewNetwork()
	svc, err := coordinator.New(coordinator.Config{Name: "coord-2", Bus: net.Connect(), Store: st,
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, PlanTimeout: 100 * time.Millisecond,
		RecoverWait: 100 * time.Millisecond, Log: quiet()}) // no agent comes back: aborted without them
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "unfinished snapshot aborted", func() bool {
		got, err := st.Get(context.Background(), "snap-k")
		return err == nil && got.State == store.StateAborted && got.Reason != ""
	})
	// The dead coordinator's lock on the stack was broken: a new snapshot may start.
	waitFor(t, "stack lock broken", func() bool {
		l, err := st.LockStack(context.Background(), "bank", "probe", time.Second)
		if err == nil {
			_ = l.Unlock(context.Background())
		}
		return err == nil
	})
}

// TestSnapshotRefusedBeforeAnyLockWhenANodeCannotDump: a node whose worker cannot dump
// one of its containers (a process of another user without CAP_SYS_RESOURCE) refuses
// the plan: the snapshot fails naming the container and the cause, before any
// container of the stack is locked, and the stack's lock is released.
func TestSnapshotRefusedBeforeAnyLockWhenANodeCannotDump(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	e.execs["lab-3"].Undumpable = map[string]error{"ctr3": errors.New("container ctr3: process 7 (redis-server) runs as uid 999 gid 999: CRIU cannot dump a process of another user here")}
	res, err := e.snapshot("snap-u")
	if err == nil || !strings.Contains(err.Error(), "refused the snapshot") || !strings.Contains(err.Error(), "uid 999") || !strings.Contains(err.Error(), "lab-3") {
		t.Fatalf("err = %v, want lab-3's refusal naming the process's uid", err)
	}
	e.requireRefusedUntouched(t, res) // nospace_test.go
}

// TestRestartedCoordinatorWaitsForTheAgents: a coordinator that finds a snapshot its
// predecessor left unfinished aborts it only once the agents of its nodes are heard
// from again (an embedded NATS restarts with its coordinator: agents reconnect a few
// seconds later, and an abort sent before is lost, leaving their containers held until
// the deadline). Here the nodes come back 300 ms after the coordinator started: each
// still gets the abort.
func TestRestartedCoordinatorWaitsForTheAgents(t *testing.T) {
	st := store.NewMemory()
	m := &store.Manifest{ID: "snap-w", Stack: "bank", Algorithm: "blocking", State: store.StatePreparing, Epoch: 1,
		Coordinator: "dead", CreatedAt: time.Now()}
	for _, c := range bankStack().Containers {
		m.Containers = append(m.Containers, store.Container{Service: c.Service, Slot: c.Slot, Node: c.Node, ContainerID: c.ContainerID})
	}
	if err := st.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	m.State = store.StateDumping
	if err := st.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	net := bus.NewNetwork()
	svc, err := coordinator.New(coordinator.Config{Name: "coord-3", Bus: net.Connect(), Store: st,
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, PlanTimeout: 100 * time.Millisecond,
		WorkerTimeout: time.Second, RecoverWait: 10 * time.Second, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond) // the outage being modelled, not a synchronisation
	var mu sync.Mutex
	aborts := map[string]int{}
	agents := net.Connect()
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		if _, err := agents.Subscribe(node.NodeSubject(n), func(msg *bus.Msg) {
			if env, err := protocol.Decode(msg.Data); err == nil && env.Type == protocol.TypeAbort && env.Snapshot == "snap-w" {
				mu.Lock()
				aborts[n]++
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	hbCtx, hbStop := context.WithCancel(ctx)
	defer hbStop()
	go func() {
		for hbCtx.Err() == nil {
			for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
				b, _ := json.Marshal(node.Heartbeat{Worker: store.Worker{Node: n}})
				_ = agents.Publish(hbCtx, node.HeartbeatSubject, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitFor(t, "unfinished snapshot aborted", func() bool {
		got, err := st.Get(context.Background(), "snap-w")
		return err == nil && got.State == store.StateAborted
	})
	waitFor(t, "every node got the abort", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return aborts["lab-1"] > 0 && aborts["lab-2"] > 0 && aborts["lab-3"] > 0
	})
}

// TestSnapshotAbortsWhenTheStackLockIsLost: the lock's loss is stepped into the
// algorithm as an abort request; the snapshot aborts with that reason and every
// container is released.
func TestSnapshotAbortsWhenTheStackLockIsLost(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-l"); errc <- err }()
	waitFor(t, "snapshot dumping", func() bool {
		m, err := e.store.Get(context.Background(), "snap-l")
		return err == nil && m.State == store.StateDumping
	})
	e.store.ExpireLock("bank")
	close(stall)
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "stack lock was lost") {
			t.Fatalf("snapshot ended with %v, want aborted: the stack lock was lost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot did not end after its lock was lost")
	}
	m, _ := e.store.Get(context.Background(), "snap-l")
	if m.State != store.StateAborted || !strings.HasPrefix(m.Reason, "the stack lock was lost") {
		t.Fatalf("stored %s %q, want aborted with the lock's loss as the reason", m.State, m.Reason)
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })
}

// failingCommit is a store whose Commit is refused.
type failingCommit struct {
	*store.Memory
	err error
}

func (f failingCommit) Commit(context.Context, *store.Manifest, store.Lock) error { return f.err }

// TestFailedCommitAbortsAndReleasesEveryone: the store refuses the commit; its outcome
// is stepped back into the algorithm, which aborts the snapshot with the store's error
// and sends every container an abort (blocking keeps them frozen until the decision).
func TestFailedCommitAbortsAndReleasesEveryone(t *testing.T) {
	var mem *store.Memory
	e := newEnvWith(t, func(c *coordinator.Config) {
		mem = c.Store.(*store.Memory)
		c.Store = failingCommit{Memory: mem, err: fmt.Errorf("commit snapshot: %w", store.ErrConflict)}
	}, "lab-1", "lab-2", "lab-3")
	_, err := e.snapshot("snap-r")
	if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "commit refused") || !strings.Contains(err.Error(), "every container was released") {
		t.Fatalf("err = %v, want aborted: commit refused, every container released", err)
	}
	m, _ := mem.Get(context.Background(), "snap-r")
	if m.State != store.StateAborted || !strings.Contains(m.Reason, store.ErrConflict.Error()) {
		t.Fatalf("stored %s %q, want aborted naming the store's refusal", m.State, m.Reason)
	}
	if h := e.held(); len(h) > 0 {
		t.Fatalf("held after the failed commit: %v", h)
	}
}

// inconsistent is a Verifier that finds one orphan on every snapshot.
func inconsistent(context.Context, *store.Manifest) *store.Verdict {
	return &store.Verdict{Summary: "INCONSISTENT: 1 orphan (of 2 directions checked)", CheckedAt: time.Now(),
		Lines: []string{"bank_holder.1 -> bank_holder.2 [10.1.0.2:80-10.1.0.3:4000] sent=10 acked=10 received=12 VIOLATION orphan: 2 bytes received never sent",
			"bank_holder.2 -> bank_holder.1 [10.1.0.3:4000-10.1.0.2:80] sent=0 acked=0 received=0 ok"}}
}

// TestInconsistentCutAbortsAnAlgorithmThatPromisesConsistency: blocking promises a
// consistent cut: a cut the checker finds inconsistent aborts the snapshot, naming the
// violation, and every container is released; the verdict stays on the manifest.
func TestInconsistentCutAbortsAnAlgorithmThatPromisesConsistency(t *testing.T) {
	e := newEnvWith(t, func(c *coordinator.Config) { c.Verify = inconsistent }, "lab-1", "lab-2", "lab-3")
	_, err := e.snapshot("snap-i")
	if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "not consistent") || !strings.Contains(err.Error(), "VIOLATION orphan") {
		t.Fatalf("err = %v, want aborted naming the violation", err)
	}
	if strings.Contains(err.Error(), "sent=0 acked=0 received=0 ok") {
		t.Errorf("err = %v: the reason lists channels that are fine", err)
	}
	m, _ := e.store.Get(context.Background(), "snap-i")
	if m.State != store.StateAborted || m.Verdict == nil || m.Verdict.Consistent {
		t.Fatalf("stored %s verdict %+v, want aborted with the verdict kept", m.State, m.Verdict)
	}
	if h := e.held(); len(h) > 0 {
		t.Fatalf("held after the abort: %v", h)
	}
}

// TestInconsistentCutOfUncoordinatedCommits: uncoordinated promises no consistent cut:
// the snapshot commits with the verdict recorded (restore finds a recovery line).
func TestInconsistentCutOfUncoordinatedCommits(t *testing.T) {
	e := newEnvWith(t, func(c *coordinator.Config) { c.Verify = inconsistent }, "lab-1", "lab-2", "lab-3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "snap-u", Stack: "bank", Algorithm: uncoordinated.Name})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if m := res.Snapshot; m.State != store.StateCommitted || m.Verdict == nil || m.Verdict.Consistent {
		t.Fatalf("state %s verdict %+v, want committed with the inconsistent verdict recorded", m.State, m.Verdict)
	}
}

// TestImageSetsArriveWithDumpDone: each container's image set and freeze and dump
// times come with its dump-done (no separate report): the committed manifest has them.
func TestImageSetsArriveWithDumpDone(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	for _, ex := range e.execs {
		ex.DumpTime = 5 * time.Millisecond
	}
	res, err := e.snapshot("snap-s")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for _, c := range res.Snapshot.Containers {
		if c.Images == nil || !c.Images.Durable || c.Images.Node != c.Node || len(c.Images.Files) == 0 {
			t.Errorf("%s: image set %+v, want the durable set on %s", c.Key(), c.Images, c.Node)
		}
		if c.DumpMS < 5 || c.FreezeMS < c.DumpMS {
			t.Errorf("%s: dump %d ms, frozen %d ms; want the dump's times (>= 5 ms, frozen at least as long)", c.Key(), c.DumpMS, c.FreezeMS)
		}
	}
}

// A coordinator killed after its snapshot committed but before it unlocked the stack
// (e.g. while copying the committed sets to their replicas) leaves a lock whose
// snapshot is final: the next leader breaks it too, so the stack is not refused until
// the lock's lease lapses (found by the fault-injection test, seed 6). A lock of
// another stack the dead coordinator had already released stays released.
func TestRestartedCoordinatorBreaksTheLockOfACommittedSnapshot(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	m := &store.Manifest{ID: "snap-c", Stack: "bank", Algorithm: "blocking", State: store.StateCommitted, Epoch: 1,
		Coordinator: "dead", CreatedAt: time.Now()}
	if err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LockStack(ctx, "bank", "dead/snap-c", time.Hour); err != nil {
		t.Fatal(err)
	}
	svc, err := coordinator.New(coordinator.Config{Name: "coord-2", Bus: bus.NewNetwork().Connect(), Store: st,
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the dead coordinator's lock broken", func() bool {
		h, err := st.LockHolder(ctx, "bank")
		return err == nil && h == ""
	})
	if got, err := st.Get(ctx, "snap-c"); err != nil || got.State != store.StateCommitted {
		t.Fatalf("snap-c = %+v, %v; want it committed as it was", got, err)
	}
}

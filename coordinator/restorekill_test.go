package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Issue 21, "kill -9 of an agent or a worker in the restore phase" (found by the fault
// campaign, coordinator/faults_integration_test.go): the restore's calls to a node
// must notice that its agent died or restarted, or that its worker restarted, repeat
// what can be repeated, and a rollback must work over what a half-done restore left.

// killEnv is three agents with fake workers (lab-1..3, the bank's 5 holders) on an
// in-memory bus, a fake swarm and a coordinator with its default restorer (no
// timeout shorter than the agents' action bound: only liveness stops a call). An
// agent can be killed as kill -9 kills it (its connection cut: no goodbye, no answer)
// and started again on the same worker.
type killEnv struct {
	*env
	sw    *stack.FakeSwarm
	mu    sync.Mutex
	conns map[string]*bus.Memory
	wrap  map[string]func(worker.Restorer) worker.Restorer
	// wrapSets, when it names a node, wraps the Sets role of that node's agents
	// started from then on.
	wrapSets map[string]func(worker.Sets) worker.Sets
}

func newKillEnv(t *testing.T, wrap map[string]func(worker.Restorer) worker.Restorer, opts ...func(*killEnv, *coordinator.Config)) *killEnv {
	e := &killEnv{env: &env{t: t, net: bus.NewNetwork(), store: store.NewMemory(), execs: map[string]*worker.Fake{},
		cancel: map[string]context.CancelFunc{}}, conns: map[string]*bus.Memory{}, wrap: wrap}
	e.sw = &stack.FakeSwarm{Nodes: []string{"lab-1", "lab-2", "lab-3"}, Network: "bank_net", Subnet: "10.1.0."}
	ctx := context.Background()
	if err := e.sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 5}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sw.Tasks(ctx, "bank"); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{Name: "coord-kill", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, Stopper: e.sw, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second, WorkerTimeout: 500 * time.Millisecond, Log: quiet()}
	for _, o := range opts {
		o(e, &cfg)
	}
	svc, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	rctx, cancel := context.WithCancel(context.Background())
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = svc.Run(rctx) }()
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		ex := worker.NewFake(n)
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) { e.execs[to].PutSet(set); return false, nil }
		e.execs[n] = ex
		e.startAgent(n)
	}
	t.Cleanup(func() {
		cancel()
		e.mu.Lock()
		for _, c := range e.cancel {
			c()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	e.client = api.Client{T: e.net.Connect()}
	waitFor(t, "coordinator and workers up", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 3
	})
	return e
}

// startAgent starts (again) node's agent on its fake worker, on a connection of its own.
func (e *killEnv) startAgent(n string) {
	roles := e.execs[n].Roles()
	if w := e.wrap[n]; w != nil {
		roles.Restorer = w(roles.Restorer)
	}
	if w := e.wrapSets[n]; w != nil {
		roles.Sets = w(roles.Sets)
	}
	conn := e.net.Connect()
	a, err := agent.New(agent.Config{Node: n, Bus: conn, Worker: roles, Algorithms: lookup,
		TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.mu.Lock()
	e.conns[n] = conn
	prev := e.cancel[n]
	e.cancel[n] = func() {
		if prev != nil {
			prev()
		}
		cancel()
	}
	e.mu.Unlock()
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = a.Run(ctx) }()
}

// kill9 cuts node's agent off the bus as kill -9 does: no "leaving" heartbeat, no
// answer to what it was serving, no more heartbeats. Its goroutines run on (a
// process gone), and its worker is left as it is.
func (e *killEnv) kill9(n string) {
	e.mu.Lock()
	conn := e.conns[n]
	e.mu.Unlock()
	_ = conn.Close()
}

// restored is where each container of migration id runs (SERVICE.SLOT -> nodes), and
// the restored containers that are not a container of id.
func (e *killEnv) restored(id string) (map[string][]string, []string) {
	where := map[string][]string{}
	var other []string
	for n, ex := range e.execs {
		for _, c := range ex.Restored() {
			key, ok := strings.CutSuffix(c, "-"+id)
			if !ok {
				other = append(other, n+": "+c)
				continue
			}
			i := strings.LastIndex(key, "-")
			key = key[:i] + "." + key[i+1:]
			where[key] = append(where[key], n)
		}
	}
	return where, other
}

// requireMigrated: every holder of migration id runs once, on lab-3, unlocked, and
// nothing else was left restored.
func (e *killEnv) requireMigrated(t *testing.T, id string) {
	t.Helper()
	where, other := e.restored(id)
	if len(other) > 0 {
		t.Errorf("other restored containers left: %v", other)
	}
	for _, c := range bankStack().Containers {
		if got := where[c.Key()]; !slices.Equal(got, []string{"lab-3"}) {
			t.Errorf("%s runs on %v after the migration, want once on lab-3", c.Key(), got)
		}
	}
	for n, ex := range e.execs {
		if h := ex.Held(); len(h) > 0 {
			t.Errorf("still held on %s: %v", n, h)
		}
	}
}

// blockingRestorer restores through the worker, then, on the first restore of set,
// tells entered and never answers (its agent was killed meanwhile: the answer is lost).
type blockingRestorer struct {
	worker.Restorer
	set     string
	entered chan struct{}
	hang    chan struct{}
	once    atomic.Bool
}

func (b *blockingRestorer) Restore(ctx context.Context, set string, o worker.RestoreOptions) (container.Ref, error) {
	ref, err := b.Restorer.Restore(ctx, set, o)
	if set == b.set && b.once.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.hang
	}
	return ref, err
}

// TestRestoreSurvivesAnAgentKilledMidRestore: the target's agent is killed (-9) while
// its worker restores a container (the restore completes there, its answer is lost)
// and is restarted by its supervisor: the coordinator sees the new agent's start,
// stops waiting for the dead one's answer (which used to take the agent's action
// bound, 5 min) and asks the new agent again, whose worker answers with the container
// already restored from that set. The migration ends as asked, in seconds.
func TestRestoreSurvivesAnAgentKilledMidRestore(t *testing.T) {
	set := node.SetID("mk1", "bank_holder.1")
	br := &blockingRestorer{set: set, entered: make(chan struct{}), hang: make(chan struct{})}
	defer close(br.hang)
	first := true
	e := newKillEnv(t, map[string]func(worker.Restorer) worker.Restorer{"lab-3": func(r worker.Restorer) worker.Restorer {
		if first { // the first agent's worker role; the restarted agent's is the plain one
			first = false
			br.Restorer = r
			return br
		}
		return r
	}})
	go func() {
		<-br.entered
		e.kill9("lab-3")
		time.Sleep(300 * time.Millisecond) // the supervisor's restart delay
		e.startAgent("lab-3")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mk1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
	if err != nil {
		t.Fatalf("migrate with lab-3's agent killed and restarted mid-restore: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the migration took %v: it waited for the dead agent", d)
	}
	e.requireMigrated(t, "mk1")
}

// flakyRestorer is a worker killed (-9) after it restored one container and restarted
// by its supervisor: the agent's call of that restore fails (connection reset: the
// answer is lost, the container runs), and every call in the next down fails the
// same way (connection refused) until the worker is back.
type flakyRestorer struct {
	worker.Restorer
	set   string // the restore that kills the worker
	down  time.Duration
	mu    sync.Mutex
	until time.Time
	hit   bool
}

func (f *flakyRestorer) gone() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Now().Before(f.until) {
		return node.Mark(errors.New("worker at 127.0.0.1:7001: dial tcp: connect: connection refused"), node.ErrWorkerUnreachable)
	}
	return nil
}

func (f *flakyRestorer) Restore(ctx context.Context, set string, o worker.RestoreOptions) (container.Ref, error) {
	if err := f.gone(); err != nil {
		return container.Ref{}, err
	}
	ref, err := f.Restorer.Restore(ctx, set, o)
	f.mu.Lock()
	defer f.mu.Unlock()
	if set == f.set && !f.hit {
		f.hit, f.until = true, time.Now().Add(f.down)
		return container.Ref{}, node.Mark(errors.New("worker at 127.0.0.1:7001: POST /v1/restore: read: connection reset by peer"), node.ErrWorkerUnreachable)
	}
	return ref, err
}

func (f *flakyRestorer) RemoveContainer(ctx context.Context, name string) error {
	if err := f.gone(); err != nil {
		return err
	}
	return f.Restorer.RemoveContainer(ctx, name)
}

// TestRestoreSurvivesAWorkerRestartingMidRestore: the target's worker is killed while
// it restores a container (which it restored: the answer is lost) and restarts within
// a second: the coordinator repeats the restore once the worker is back, the worker
// answers with the container already restored from that set, and the migration ends
// as asked (it used to fail at once, leave the half-restored containers on the target
// and roll back).
func TestRestoreSurvivesAWorkerRestartingMidRestore(t *testing.T) {
	fr := &flakyRestorer{set: node.SetID("mw1", "bank_holder.2"), down: 500 * time.Millisecond}
	e := newKillEnv(t, map[string]func(worker.Restorer) worker.Restorer{"lab-3": func(r worker.Restorer) worker.Restorer {
		fr.Restorer = r
		return fr
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mw1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true}); err != nil {
		t.Fatalf("migrate with lab-3's worker restarting mid-restore: %v", err)
	}
	if !fr.hit {
		t.Fatal("the worker was never killed: the test did not test anything")
	}
	e.requireMigrated(t, "mw1")
}

// TestRollbackOverHalfRestoredContainers: a migration whose restore fails for good on
// its target (CRIU refuses one container) while that target's worker restarts (killed
// just after it restored another one): the undo's removals there are repeated once
// the worker is back, and the rollback puts every original back where it was, with
// nothing left on the target (the half-restored containers used to stay there,
// holding the originals' addresses, and the rollback then failed).
func TestRollbackOverHalfRestoredContainers(t *testing.T) {
	fr := &flakyRestorer{set: node.SetID("mr1", "bank_holder.2"), down: 500 * time.Millisecond}
	e := newKillEnv(t, map[string]func(worker.Restorer) worker.Restorer{"lab-3": func(r worker.Restorer) worker.Restorer {
		fr.Restorer = r
		return fr
	}})
	e.execs["lab-3"].FailRestore = map[string]error{node.SetID("mr1", "bank_holder.1"): errors.New("criu: boom")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mr1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "originals restored where they were") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("migrate with a failing target: %v", err)
	}
	where, other := e.restored("mr1")
	if len(other) > 0 {
		t.Errorf("other restored containers left: %v", other)
	}
	for _, c := range bankStack().Containers {
		if got := where[c.Key()]; !slices.Equal(got, []string{c.Node}) {
			t.Errorf("%s runs on %v after the rollback, want once on its original node %s", c.Key(), got, c.Node)
		}
	}
	if r := e.sw.Replicas("bank_holder"); r != 0 {
		t.Errorf("bank_holder at %d replicas after a rollback that restored the originals, want 0 (not started fresh)", r)
	}
	for n, ex := range e.execs {
		if h := ex.Held(); len(h) > 0 {
			t.Errorf("still held on %s: %v", n, h)
		}
	}
}

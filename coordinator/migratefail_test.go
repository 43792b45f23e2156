package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// newMigrateEnv is like newEnv (bank: 5 holders on lab-1..3), with a fake swarm
// running bank_holder at 5 replicas as the Stopper and the agents as the restorer, sets
// streamed between the fake nodes. setup, if given, adjusts each node's executor
// before its agent starts.
func newMigrateEnv(t *testing.T, setup ...func(*worker.Fake)) (*env, *stack.FakeSwarm) {
	e, sw, _ := newMigrateEnvWrapped(t, nil, setup...)
	return e, sw
}

// newMigrateEnvWrapped is newMigrateEnv whose coordinator uses wrap(e.store) (nil: the
// store itself); it also returns what stops that coordinator (it stops at cleanup).
func newMigrateEnvWrapped(t *testing.T, wrap func(*store.Memory) store.Store, setup ...func(*worker.Fake)) (*env, *stack.FakeSwarm, context.CancelFunc) {
	return newMigrateEnvConfig(t, wrap, nil, setup...)
}

// newMigrateEnvConfig is newMigrateEnvWrapped whose coordinator's config tweak
// changes (nil: none).
func newMigrateEnvConfig(t *testing.T, wrap func(*store.Memory) store.Store, tweak func(*coordinator.Config), setup ...func(*worker.Fake)) (*env, *stack.FakeSwarm, context.CancelFunc) {
	e := &env{t: t, net: bus.NewNetwork(), store: store.NewMemory(), execs: map[string]*worker.Fake{},
		cancel: map[string]context.CancelFunc{}}
	sw := &stack.FakeSwarm{Nodes: []string{"lab-1", "lab-2", "lab-3"}, Network: "bank_net", Subnet: "10.1.0."}
	ctx := context.Background()
	if err := sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 5}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Tasks(ctx, "bank"); err != nil {
		t.Fatal(err)
	}
	var st store.Store = e.store
	if wrap != nil {
		st = wrap(e.store)
	}
	cancel := e.startMigrateCoordinator(sw, st, tweak)
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		ex := worker.NewFake(n)
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) { e.execs[to].PutSet(set); return false, nil }
		for _, f := range setup {
			f(ex)
		}
		e.execs[n] = ex
		e.startAgent(n)
	}
	t.Cleanup(func() {
		cancel()
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
	return e, sw, cancel
}

// startMigrateCoordinator starts e's coordinator (e.svc) over sw and st, serving
// restores through the agents; it returns what stops it.
func (e *env) startMigrateCoordinator(sw *stack.FakeSwarm, st store.Store, tweak ...func(*coordinator.Config)) context.CancelFunc {
	cfg := coordinator.Config{Name: "coord-migrate", Bus: e.net.Connect(), Store: st,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, Stopper: sw, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second, RecoverWait: 3 * time.Second,
		WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second},
			Events: e.recordEvent}}
	for _, f := range tweak {
		if f != nil {
			f(&cfg)
		}
	}
	svc, err := coordinator.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	rctx, cancel := context.WithCancel(context.Background())
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = svc.Run(rctx) }()
	return cancel
}

// TestMigrateRollbackStillRestoresTheOriginals: a migration whose restore fails on the
// target restores the originals where they were (its own rollback, no scale-back);
// when that rollback fails too, the services are scaled back to their replicas.
func TestMigrateRollbackStillRestoresTheOriginals(t *testing.T) {
	t.Run("RolledBack", func(t *testing.T) {
		e, sw := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.execs["lab-3"].FailRestore = map[string]error{node.SetID("mig1", "bank_holder.1"): errors.New("criu: boom")}
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "originals restored where they were") || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("migrate with a failing target: %v", err)
		}
		n := 0
		for nodeName, ex := range e.execs {
			for _, c := range ex.Restored() {
				n++
				if nodeName == "lab-3" && strings.HasPrefix(c, "bank_holder-1-") {
					t.Errorf("bank_holder.1 restored on the failing target: %v", c)
				}
			}
		}
		if n != 5 {
			t.Errorf("%d containers restored after the rollback, want the 5 originals", n)
		}
		if r := sw.Replicas("bank_holder"); r != 0 {
			t.Errorf("bank_holder at %d replicas after a rollback that restored the originals, want 0", r)
		}
	})
	t.Run("RollbackFailsToo", func(t *testing.T) {
		e, sw := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		set := node.SetID("mig2", "bank_holder.1")
		e.execs["lab-3"].FailRestore = map[string]error{set: errors.New("criu: boom")}
		e.execs["lab-1"].FailRestore = map[string]error{set: errors.New("criu: boom again")}
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig2", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "rollback onto the original nodes failed too") || !strings.Contains(err.Error(), "started again fresh from their images") {
			t.Fatalf("migrate whose rollback fails: %v", err)
		}
		if r := sw.Replicas("bank_holder"); r != 5 {
			t.Errorf("bank_holder at %d replicas after the failed rollback, want 5 (scaled back)", r)
		}
		for nodeName, ex := range e.execs {
			if r := ex.Restored(); len(r) > 0 {
				t.Errorf("restored containers left on %s: %v", nodeName, r)
			}
		}
	})
}

// TestMigrateRefusedBeforeAnythingIsTouched: a migration that cannot succeed is
// refused before the snapshot: --to a node without a live worker, and --mode swarm
// --from the node a service is pinned to (its own constraint and the migration's leave
// no node: swarm would keep its tasks pending after the stack was stopped).
func TestMigrateRefusedBeforeAnythingIsTouched(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sw.ServiceConstraints = map[string][]string{"bank_holder": {"node.hostname==lab-2"}}
	for _, tc := range []struct {
		req  api.MigrateRequest
		code error
		want string
	}{
		{api.MigrateRequest{ID: "m1", Stack: "bank", To: "nosuchnode"}, api.ErrNoWorker, "node nosuchnode has no live worker"},
		{api.MigrateRequest{ID: "m2", Stack: "bank", From: "lab-2", Mode: api.ModeSwarm}, api.ErrBadRequest, "service bank_holder: its placement constraints [node.hostname==lab-2] and node.hostname!=lab-2 leave no suitable node"},
	} {
		_, err := e.svc.Migrate(ctx, tc.req)
		if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("migrate %+v: want %v saying %q, got %v", tc.req, tc.code, tc.want, err)
		}
	}
	ms, err := e.store.List(ctx, "bank")
	if err != nil || len(ms) != 0 {
		t.Errorf("refused migrations left snapshots: %d (%v)", len(ms), err)
	}
	for n, ex := range e.execs {
		if ex.Dumps("ctr1")+ex.Dumps("ctr2")+ex.Dumps("ctr3")+ex.Dumps("ctr4")+ex.Dumps("ctr5") > 0 {
			t.Errorf("%s dumped containers for a refused migration", n)
		}
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas, want 5", r)
	}
}

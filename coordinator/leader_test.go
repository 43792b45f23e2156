package coordinator_test

import (
	"context"
	"errors"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// haTTL is the election lease of these tests.
const haTTL = 2 * time.Second

// haEnv is several coordinators on one real embedded etcd (each with its own client,
// as separate processes have), agents with fake executors on an in-memory bus.
type haEnv struct {
	t      *testing.T
	etcd   etcdstore.Config
	net    *bus.Network
	execs  map[string]*worker.Fake
	client api.Client
	coords map[string]*haCoord
}

// haCoord is one coordinator "process": its etcd client and bus connection are its
// own, so that kill can cut both at once.
type haCoord struct {
	st     *etcdstore.Store
	tr     *bus.Memory
	cancel context.CancelFunc
	done   chan error
}

func newHAEnv(t *testing.T, nodes ...string) *haEnv {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cr := srv.EtcdCredentials()
	e := &haEnv{t: t, etcd: etcdstore.Config{Endpoints: srv.EtcdEndpoints(), CAFile: cr.CA, CertFile: cr.Cert, KeyFile: cr.Key},
		net: bus.NewNetwork(), execs: map[string]*worker.Fake{}, coords: map[string]*haCoord{}}
	e.client = api.Client{T: e.net.Connect()}
	for _, n := range nodes {
		ex := worker.NewFake(n)
		e.execs[n] = ex
		a, err := agent.New(agent.Config{Node: n, Bus: e.net.Connect(), Worker: ex.Roles(), Algorithms: lookup,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(actx) }()
		t.Cleanup(func() { acancel(); <-done })
	}
	return e
}

// start runs coordinator name on the shared etcd.
func (e *haEnv) start(name string) *haCoord {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := etcdstore.Open(ctx, e.etcd)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &haCoord{st: st, tr: e.net.Connect(), done: make(chan error, 1)}
	svc, err := coordinator.New(coordinator.Config{Name: name, Bus: c.tr, Store: st, Elector: st.Elector(haTTL),
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 20 * time.Second, PlanTimeout: time.Second, WorkerTimeout: 500 * time.Millisecond,
		RecoverWait: 5 * time.Second, Log: quiet()})
	if err != nil {
		e.t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	c.cancel = rcancel
	go func() { c.done <- svc.Run(rctx) }()
	e.coords[name] = c
	e.t.Cleanup(func() { rcancel(); c.tr.Close(); st.Close() })
	return c
}

// kill ends coordinator name as kill -9 would: no resign, no message, no write.
func (e *haEnv) kill(name string) {
	c := e.coords[name]
	c.tr.Close()
	c.st.Close()
	c.cancel()
}

func (e *haEnv) status() (*api.StatusResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return api.Call[api.StatusResult](ctx, e.client, api.OpStatus, api.StatusRequest{})
}

// waitLeader waits until name answers the CLI as leader, at most within; returns when.
func (e *haEnv) waitLeader(name string, within time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := e.status()
		if err == nil && st.Coordinator == name && len(st.Coordinators) > 0 && st.Coordinators[0].Name == name && st.Coordinators[0].Leader {
			return time.Now()
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s does not lead after %v: status %+v, %v", name, within, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *haEnv) held() []string {
	var out []string
	for _, ex := range e.execs {
		out = append(out, ex.Held()...)
	}
	return out
}

func (e *haEnv) snapshotAsync(id string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: id, Stack: "bank"})
		errc <- err
	}()
	return errc
}

func (e *haEnv) manifest(id string) *store.Manifest {
	c := e.coords[mapKey(e.coords)]
	if c == nil {
		return nil // no coordinator's store client answers now (one killed, the next not up): poll again
	}
	m, err := c.st.Get(context.Background(), id)
	if err != nil {
		return nil
	}
	return m
}

// mapKey is any live coordinator's name (to read the store through its client).
func mapKey(cs map[string]*haCoord) string {
	for n, c := range cs {
		if _, err := c.st.Client().Get(context.Background(), "/ping"); err == nil {
			return n
		}
	}
	return ""
}

// TestStandbyTakesOverAndRecovers: two coordinators on one etcd; the leader is killed
// while a snapshot of bank is dumping (one container stuck in its dump). The standby
// leads within the election TTL plus a few seconds, answers the CLI, and its recovery
// aborts the dead leader's snapshot: every container is released and the stack lock is
// free.
func TestStandbyTakesOverAndRecovers(t *testing.T) {
	e := newHAEnv(t, "lab-1", "lab-2", "lab-3")
	e.start("c1")
	e.waitLeader("c1", 10*time.Second)
	e.start("c2")
	waitFor(t, "c2 listed as standby", func() bool {
		st, err := e.status()
		return err == nil && len(st.Coordinators) == 2 && st.Coordinators[1].Name == "c2" && !st.Coordinators[1].Leader &&
			st.Coordinators[0].Name == "c1" && st.Coordinators[0].PID > 0 && st.Coordinators[0].Host != "" && len(st.Nodes) == 3 && st.Nodes[0].Live
	})
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	_ = e.snapshotAsync("snap-ha")
	waitFor(t, "snapshot dumping", func() bool {
		m := e.manifest("snap-ha")
		return m != nil && m.State == store.StateDumping
	})
	st, err := e.status()
	if err != nil || len(st.Operations) != 1 || st.Operations[0] != (api.Operation{Stack: "bank", Owner: "c1/snap-ha", Coordinator: "c1", Kind: "snapshot", ID: "snap-ha"}) {
		t.Fatalf("status operations = %+v, %v; want c1's snapshot of bank", st, err)
	}
	killed := time.Now()
	e.kill("c1")
	led := e.waitLeader("c2", haTTL+5*time.Second)
	t.Logf("c2 leads %v after c1 was killed (TTL %v)", led.Sub(killed).Round(10*time.Millisecond), haTTL)
	waitFor(t, "dead leader's snapshot aborted", func() bool {
		m := e.manifest("snap-ha")
		return m != nil && m.State == store.StateAborted
	})
	close(stall) // the stuck dump ends; its container is released by the abort
	waitForLong(t, 20*time.Second, "every container released", func() bool { return len(e.held()) == 0 })
	waitFor(t, "stack lock free", func() bool {
		st, err := e.status()
		return err == nil && len(st.Operations) == 0
	})
	// The stack can be snapshotted again under the new leader.
	if err := <-e.snapshotAsync("snap-ha2"); err != nil {
		t.Fatalf("snapshot under the new leader: %v", err)
	}
	st, err = e.status()
	if err != nil || len(st.Coordinators) != 1 || st.Coordinators[0].Name != "c2" || st.Coordinators[0].LeaderSince.Before(killed) {
		t.Fatalf("status after the takeover: %+v, %v; want c2 alone, leading since after the kill", st, err)
	}
}

// TestStartingCoordinatorLeavesTheLeadersSnapshotAlone: a coordinator that starts
// while another leads and holds bank's lock for a running snapshot stands by: it does
// not abort that snapshot (which commits), and it does not answer the CLI. When the
// leader stops cleanly it resigns and the standby leads at once, not after the TTL.
func TestStartingCoordinatorLeavesTheLeadersSnapshotAlone(t *testing.T) {
	e := newHAEnv(t, "lab-1", "lab-2", "lab-3")
	c1 := e.start("c1")
	e.waitLeader("c1", 10*time.Second)
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	errc := e.snapshotAsync("snap-live")
	waitFor(t, "snapshot dumping", func() bool {
		m := e.manifest("snap-live")
		return m != nil && m.State == store.StateDumping
	})
	e.start("c2")
	waitFor(t, "c2 standing by", func() bool {
		st, err := e.status()
		return err == nil && len(st.Coordinators) == 2 && st.Coordinators[1].Name == "c2"
	})
	// c2 has heard every agent by now (50 ms heartbeats): a recovery of its own would
	// abort at once. Give it that chance before checking.
	time.Sleep(500 * time.Millisecond)
	if m := e.manifest("snap-live"); m == nil || m.State != store.StateDumping {
		t.Fatalf("the live leader's snapshot was touched by the starting coordinator: %+v", m)
	}
	for i := 0; i < 10; i++ {
		if st, err := e.status(); err != nil || st.Coordinator != "c1" {
			t.Fatalf("status answered by %v (%v), want the leader c1 only", st, err)
		}
	}
	close(stall)
	if err := <-errc; err != nil {
		t.Fatalf("the leader's snapshot: %v", err)
	}
	if m := e.manifest("snap-live"); m == nil || m.State != store.StateCommitted {
		t.Fatalf("snapshot = %+v, want committed", m)
	}
	t0 := time.Now()
	c1.cancel()
	if err := <-c1.done; err != nil {
		t.Fatalf("c1 stopped with %v", err)
	}
	e.waitLeader("c2", time.Second+haTTL/2)
	if d := time.Since(t0); d >= haTTL {
		t.Fatalf("c2 led %v after c1 resigned: it waited for the lease instead", d)
	}
	if h := e.held(); len(h) != 0 {
		t.Fatalf("held: %v", h)
	}
}

// TestLeaderThatLosesItsLeadershipStops: a leader whose election lease lapses while it
// lives (cut off from etcd) stops answering the CLI, aborts the snapshot it runs
// (releasing its containers) and returns store.ErrLeadershipLost, so that its
// supervisor restarts it as a standby. In-memory store and election.
func TestLeaderThatLosesItsLeadershipStops(t *testing.T) {
	el := store.NewMemoryElection()
	e := newEnvWith(t, func(c *coordinator.Config) { c.Elector = el; c.Name = "c1" }, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-lost"); errc <- err }()
	waitFor(t, "snapshot dumping", func() bool {
		m, err := e.store.Get(context.Background(), "snap-lost")
		return err == nil && m.State == store.StateDumping
	})
	if !el.Kill("c1") {
		t.Fatal("c1 is no candidate")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "lost its leadership") {
			t.Fatalf("snapshot ended with %v, want aborted naming the lost leadership", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot did not end after the leadership was lost")
	}
	close(stall)
	waitForLong(t, 20*time.Second, "every container released", func() bool { return len(e.held()) == 0 })
	select {
	case err := <-e.runErr:
		if !errors.Is(err, store.ErrLeadershipLost) {
			t.Fatalf("Run returned %v, want store.ErrLeadershipLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the leadership was lost")
	}
	// Nobody answers the CLI any more (no other candidate leads).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := api.Call[api.StatusResult](ctx, e.client, api.OpStatus, api.StatusRequest{}); err == nil {
		t.Fatal("the deposed leader still answers the CLI")
	}
}

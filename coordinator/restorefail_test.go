package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// exactEnv is swarmEnv (three agents with fake executors, a fake swarm) serving exact
// restores through a coordinator, with stack bank running bank_holder at 3 replicas.
type exactEnv struct {
	*swarmEnv
	st  store.Store
	svc *coordinator.Service
	m   *store.Manifest
}

func newExactEnv(t *testing.T) *exactEnv {
	e := &exactEnv{swarmEnv: newSwarmEnv(t), st: store.NewMemory(), m: bankManifest()}
	ctx := context.Background()
	if err := e.st.Create(ctx, e.m); err != nil {
		t.Fatal(err)
	}
	if err := e.sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sw.Tasks(ctx, "bank"); err != nil { // the three tasks run
		t.Fatal(err)
	}
	e.svc = serveRestores(t, e.swarmEnv, e.st, lookup)
	return e
}

// serveRestores runs a coordinator over e's agents and fake swarm with store st and
// an AgentRestorer, and returns it once it has seen the three workers.
func serveRestores(t *testing.T, e *swarmEnv, st store.Store, algos func(string) (algorithms.Algorithm, error)) *coordinator.Service {
	t.Helper()
	svc, err := coordinator.New(coordinator.Config{Name: "coord-test", Bus: e.net.Connect(), Store: st, Stopper: e.sw,
		Resolver: stack.Static{}, Algorithms: algos, TickPeriod: 10 * time.Millisecond, WorkerTimeout: 500 * time.Millisecond, Log: quiet(),
		Restorer: &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = svc.Run(rctx) }()
	client := api.Client{T: e.net.Connect()}
	waitFor(t, "workers seen", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(s.Workers) == 3
	})
	return svc
}

func (e *exactEnv) restore(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Each holder moves to the next node: n1 -> n2, n2 -> n3, n3 -> n1.
	_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: e.m.ID, Targets: map[string]string{
		"bank_holder.1": "n2", "bank_holder.2": "n3", "bank_holder.3": "n1"}})
	return err
}

// requireUntouched: the stack still runs as before, nothing was restored or moved.
func (e *exactEnv) requireUntouched(t *testing.T) {
	t.Helper()
	if e.sw.Stops != 0 {
		t.Errorf("the stack was stopped %d times by a refused restore", e.sw.Stops)
	}
	if r := e.sw.Replicas("bank_holder"); r != 3 {
		t.Errorf("bank_holder has %d replicas after a refused restore, want 3", r)
	}
	for _, n := range swarmNodes {
		if r := e.execs[n].Restored(); len(r) > 0 {
			t.Errorf("containers restored on %s by a refused restore: %v", n, r)
		}
		if p := e.execs[n].Prepared(); len(p) > 0 {
			t.Errorf("node %s was told to prepare a refused restore: %+v", n, p)
		}
	}
	for _, c := range e.m.Containers {
		set := node.SetID(e.m.ID, c.Key())
		for _, n := range swarmNodes {
			if n != c.Images.Node && e.execs[n].HasSet(set) {
				t.Errorf("set %s was moved to %s by a refused restore", set, n)
			}
		}
	}
	got, err := e.st.Get(context.Background(), e.m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Restores) != 0 {
		t.Errorf("a refused restore was recorded as attempted: %+v", got.Restores)
	}
}

// TestExactRestorePreflightRefusesWithNothingChanged: what a node reports (an address
// held outside the stack), and a set gone from its node, refuse the restore before
// the stack is stopped; the error names the container, the node and the fix.
func TestExactRestorePreflightRefusesWithNothingChanged(t *testing.T) {
	t.Run("AddressTaken", func(t *testing.T) {
		e := newExactEnv(t)
		e.putSets(e.m)
		held := "bank_holder.1: its address 10.1.0.2 on network bank_net is held by container intruder (0123456789ab) on node n3 (...): remove that container (docker rm -f intruder) or free the address"
		e.execs["n3"].PreflightProblems = []string{held}
		err := e.restore(t)
		if err == nil || !strings.Contains(err.Error(), held) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("restore with an address held outside the stack: %v", err)
		}
		e.requireUntouched(t)
	})
	t.Run("SetGone", func(t *testing.T) {
		e := newExactEnv(t)
		e.putSets(e.m)
		set := node.SetID(e.m.ID, "bank_holder.2")
		if err := e.execs["n2"].DropSet(context.Background(), set); err != nil {
			t.Fatal(err)
		}
		err := e.restore(t)
		if err == nil || !strings.Contains(err.Error(), "bank_holder.2: its image set "+set+" is not on node n2") {
			t.Fatalf("restore with a set gone: %v", err)
		}
		e.requireUntouched(t)
	})
	t.Run("SetCorrupt", func(t *testing.T) {
		// Every file is there with its size, but one byte differs: found by the node's
		// re-hash in the pre-flight, before the stop (it used to be found by the restore
		// itself, after the stack was stopped).
		e := newExactEnv(t)
		e.putSets(e.m)
		e.execs["n2"].FailVerify = errors.New("image file images/pages-1.img: checksum mismatch (size 4096 sha256 0a1b2c, manifest says size 4096 sha256 9f8e7d): the images are corrupt; take a new snapshot")
		err := e.restore(t)
		if err == nil || !strings.Contains(err.Error(), "bank_holder.2: its image set on node n2 failed verification") ||
			!strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("restore of a corrupt set: %v", err)
		}
		e.requireUntouched(t)
	})
}

// TestExactRestoreFailureScalesBack: a restore failing after the stack was stopped
// starts its services again at their replicas; the error says so and gives the cause;
// the running tasks were killed (not stopped gracefully) through their agents.
func TestExactRestoreFailureScalesBack(t *testing.T) {
	e := newExactEnv(t)
	e.putSets(e.m)
	e.execs["n3"].FailRestore = map[string]error{node.SetID(e.m.ID, "bank_holder.2"): errors.New("criu: restore failed: File bin/bank has bad size")}
	err := e.restore(t)
	if err == nil {
		t.Fatal("restore succeeded although n3 fails it")
	}
	for _, want := range []string{"started again fresh from their images", "bank_holder=3", "bad size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if e.sw.Stops != 1 {
		t.Errorf("stack stopped %d times, want 1", e.sw.Stops)
	}
	// Every check passed: each target node was told to prepare (network keepers) for
	// the container it restores, with that container's addresses.
	for key, n := range map[string]string{"bank_holder.1": "n2", "bank_holder.2": "n3", "bank_holder.3": "n1"} {
		p := e.execs[n].Prepared()
		if len(p) != 1 || len(p[0].Containers) != 1 || p[0].Containers[0].Key != key || len(p[0].Addresses) == 0 || len(p[0].Sets) != 0 {
			t.Errorf("node %s prepared %+v, want one Prepare for %s with the addresses", n, p, key)
		}
	}
	if r := e.sw.Replicas("bank_holder"); r != 3 {
		t.Errorf("bank_holder has %d replicas after the failed restore, want 3 (scaled back)", r)
	}
	if n := len(e.sw.Killed); n != 3 {
		t.Errorf("tasks killed on %d nodes (%v), want 3", n, e.sw.Killed)
	}
	for _, n := range swarmNodes {
		if r := e.execs[n].Restored(); len(r) > 0 {
			t.Errorf("restored containers left on %s after the failure: %v", n, r)
		}
	}
	got, _ := e.st.Get(context.Background(), e.m.ID)
	if len(got.Restores) != 1 || got.Restores[0].OK || !strings.Contains(got.Restores[0].Error, "bad size") {
		t.Errorf("restore record %+v, want one failed attempt with its cause", got.Restores)
	}
	// The same restore succeeds once the cause is gone: nothing was left in its way.
	e.execs["n3"].FailRestore = nil
	if err := e.restore(t); err != nil {
		t.Fatalf("restore after the failure was fixed: %v", err)
	}
	if r := e.sw.Replicas("bank_holder"); r != 0 {
		t.Errorf("bank_holder has %d replicas after a successful restore, want 0", r)
	}
}

// TestExactRestoreUndoRemovesFailedContainersByName: a container whose restore failed
// but that stayed behind (created, not restored) is removed by the undo too, by name:
// a retry, or a rollback, finds its name free.
func TestExactRestoreUndoRemovesFailedContainersByName(t *testing.T) {
	e := newExactEnv(t)
	e.putSets(e.m)
	e.execs["n3"].LeaveFailed = true
	e.execs["n3"].FailRestore = map[string]error{node.SetID(e.m.ID, "bank_holder.2"): errors.New("criu: restore failed")}
	if err := e.restore(t); err == nil {
		t.Fatal("restore succeeded although n3 fails it")
	}
	if r := e.execs["n3"].Restored(); len(r) > 0 {
		t.Fatalf("the failed restore's container stayed on n3: %v", r)
	}
	e.execs["n3"].FailRestore = nil
	e.putSets(e.m) // the scale-back does not bring back sets the transfer used up
	if err := e.restore(t); err != nil {
		t.Fatalf("retry after the failure: %v", err)
	}
}

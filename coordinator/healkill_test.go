package coordinator_test

import (
	"context"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// blockingSets verifies through the worker, but on the first verify of set tells
// entered and never answers (its agent is killed meanwhile: the answer is lost).
type blockingSets struct {
	worker.Sets
	set     string
	entered chan struct{}
	hang    chan struct{}
	once    atomic.Bool
}

func (b *blockingSets) Sockets(ctx context.Context, set, label string) (worker.SetSockets, error) {
	if set == b.set && b.once.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.hang
	}
	return b.Sets.Sockets(ctx, set, label)
}

// TestRestoreHealSurvivesAnAgentKilledMidVerify (issue 21, fault seed 889): before a
// restore reads a snapshot's sets, the coordinator verifies each set that has copies
// on its own node (healFromCopies). The agent of that node is killed (-9) while its
// worker verifies, and restarted by its supervisor: the coordinator must see the new
// agent and ask it again, not wait for the lost answer until the verify's timeout (2
// min: the restore was held that long before its checkpoint on the lab).
func TestRestoreHealSurvivesAnAgentKilledMidVerify(t *testing.T) {
	e := newKillEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	snap, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "hk", Stack: "bank", Algorithm: "blocking", Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	c0 := snap.Snapshot.Containers[0]
	if len(c0.Copies) == 0 {
		t.Fatalf("%s has no copy: the heal step would not verify it", c0.Key())
	}
	home := c0.Images.Node
	bs := &blockingSets{set: node.SetID("hk", c0.Key()), entered: make(chan struct{}), hang: make(chan struct{})}
	defer close(bs.hang)
	first := true
	e.wrapSets = map[string]func(worker.Sets) worker.Sets{home: func(s worker.Sets) worker.Sets {
		if first { // the agent started now; its successor gets the plain role
			first = false
			bs.Sets = s
			return bs
		}
		return s
	}}
	before, _ := e.svc.AgentAlive(home)
	e.kill9(home)
	e.startAgent(home)
	waitFor(t, "the agent of "+home+" back (a new start time, live)", func() bool {
		started, live := e.svc.AgentAlive(home)
		return live && !started.Equal(before)
	})
	go func() {
		<-bs.entered
		e.kill9(home)
		time.Sleep(300 * time.Millisecond) // the supervisor's restart delay
		e.startAgent(home)
	}()
	start := time.Now()
	if _, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "hk", OnOriginal: true, DiscardRunning: true}); err != nil {
		t.Fatalf("restore with %s's agent killed and restarted while it verified %s's set: %v (after %v)", home, c0.Key(), err, time.Since(start).Round(time.Millisecond))
	}
	select {
	case <-bs.entered:
	default:
		t.Fatalf("the verify of %s's set on %s never reached its worker: the test did not kill anything", c0.Key(), home)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the restore took %v: it waited for the dead agent's verify", d)
	}
}

// TestCommitVerifySurvivesAnAgentKilledMidVerify (issue 21, fault seed 1417): a
// snapshot's commit verifies every set on its node (AgentCommitVerifierWatched). The
// agent of one node is killed (-9) while its worker verifies, and restarted: the
// commit must ask the restarted agent again, not wait for the lost answer until the
// verify's timeout (the restore's checkpoint took 2 min on the lab).
func TestCommitVerifySurvivesAnAgentKilledMidVerify(t *testing.T) {
	e := newKillEnv(t, nil, func(e *killEnv, c *coordinator.Config) {
		c.SnapshotTimeout = time.Minute
		c.VerifyCommit = coordinator.AgentCommitVerifierWatched(c.Bus, 40*time.Second, func(n string) (time.Time, bool) { return e.svc.AgentAlive(n) })
	})
	home := bankStack().Containers[0].Node
	set := node.SetID("cv", bankStack().Containers[0].Key())
	bs := &blockingSets{set: set, entered: make(chan struct{}), hang: make(chan struct{})}
	defer close(bs.hang)
	first := true
	e.wrapSets = map[string]func(worker.Sets) worker.Sets{home: func(s worker.Sets) worker.Sets {
		if first {
			first = false
			bs.Sets = s
			return bs // no RecheckSockets: the agent verifies through Sockets
		}
		return s
	}}
	before, _ := e.svc.AgentAlive(home)
	e.kill9(home)
	e.startAgent(home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, "the agent of "+home+" back (a new start time, live)", func() bool {
		started, live := e.svc.AgentAlive(home)
		return live && !started.Equal(before)
	})
	go func() {
		<-bs.entered
		e.kill9(home)
		time.Sleep(300 * time.Millisecond) // the supervisor's restart delay
		e.startAgent(home)
	}()
	start := time.Now()
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "cv", Stack: "bank", Algorithm: "blocking"})
	if err != nil {
		t.Fatalf("snapshot with %s's agent killed and restarted while it verified for the commit: %v (after %v)", home, err, time.Since(start).Round(time.Millisecond))
	}
	select {
	case <-bs.entered:
	default:
		t.Fatalf("the commit's verify of %s never reached its worker: the test killed nothing", set)
	}
	if res.Snapshot.Verdict == nil || res.Snapshot.Verdict.Error != "" {
		t.Errorf("verdict %+v: want the cut checked", res.Snapshot.Verdict)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the snapshot took %v: its commit waited for the dead agent's verify", d)
	}
}

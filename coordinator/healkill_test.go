package coordinator_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// blockingSets verifies and sends through the worker, but on the first verify of set
// (with send: the first send of set) tells entered and never answers (its agent is
// killed meanwhile: the answer is lost).
type blockingSets struct {
	worker.Sets
	set     string
	send    bool
	entered chan struct{}
	hang    chan struct{}
	once    atomic.Bool
}

// block blocks the first call on b's set of the kind b blocks.
func (b *blockingSets) block(set string, send bool) {
	if set == b.set && send == b.send && b.once.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.hang
	}
}

func (b *blockingSets) Sockets(ctx context.Context, set, label string) (worker.SetSockets, error) {
	b.block(set, false)
	return b.Sets.Sockets(ctx, set, label)
}

func (b *blockingSets) Send(ctx context.Context, set, addr string) (worker.SendResult, error) {
	b.block(set, true)
	return b.Sets.Send(ctx, set, addr)
}

// requireEntered fails t unless the verify of b's set reached its worker (else the
// test killed nothing).
func (b *blockingSets) requireEntered(t *testing.T, what string) {
	t.Helper()
	select {
	case <-b.entered:
	default:
		t.Fatalf("%s of %s never reached its worker: the test killed nothing", what, b.set)
	}
}

// killAgentMidVerify arms home's node so that the next verify of set kills (-9) the
// agent serving it: the agent is restarted with its Sets role wrapped (blockingSets:
// the first verify of set tells entered and never answers), the test waits until the
// coordinator sees the new agent (a new start time, live), and as that verify enters
// the worker the agent is killed, then, with restart, started again after its
// supervisor's restart delay (its successor gets the plain role); without, it stays
// dead.
func killAgentMidVerify(t *testing.T, e *killEnv, home, set string, restart bool) *blockingSets {
	t.Helper()
	return killAgentMid(t, e, home, set, restart, false)
}

// killAgentMidSend is killAgentMidVerify for the next send of set (a copy to another
// node) instead of its verify.
func killAgentMidSend(t *testing.T, e *killEnv, home, set string, restart bool) *blockingSets {
	t.Helper()
	return killAgentMid(t, e, home, set, restart, true)
}

func killAgentMid(t *testing.T, e *killEnv, home, set string, restart, send bool) *blockingSets {
	t.Helper()
	bs := &blockingSets{set: set, send: send, entered: make(chan struct{}), hang: make(chan struct{})}
	t.Cleanup(func() { close(bs.hang) }) // before newKillEnv's cleanup waits for the agents
	first := true
	e.wrapSets = map[string]func(worker.Sets) worker.Sets{home: func(s worker.Sets) worker.Sets {
		if first { // the agent started now; its successor gets the plain role
			first = false
			bs.Sets = s
			return bs // no RecheckSockets: the agent verifies through Sockets
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
		select {
		case <-bs.entered:
		case <-bs.hang:
			return
		}
		e.kill9(home)
		if restart {
			time.Sleep(300 * time.Millisecond) // the supervisor's restart delay
			e.startAgent(home)
		}
	}()
	return bs
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
	bs := killAgentMidVerify(t, e, home, node.SetID("hk", c0.Key()), true)
	start := time.Now()
	if _, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "hk", OnOriginal: true, DiscardRunning: true}); err != nil {
		t.Fatalf("restore with %s's agent killed and restarted while it verified %s's set: %v (after %v)", home, c0.Key(), err, time.Since(start).Round(time.Millisecond))
	}
	bs.requireEntered(t, "the heal's verify on "+home)
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
	bs := killAgentMidVerify(t, e, home, node.SetID("cv", bankStack().Containers[0].Key()), true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "cv", Stack: "bank", Algorithm: "blocking"})
	if err != nil {
		t.Fatalf("snapshot with %s's agent killed and restarted while it verified for the commit: %v (after %v)", home, err, time.Since(start).Round(time.Millisecond))
	}
	bs.requireEntered(t, "the commit's verify")
	if res.Snapshot.Verdict == nil || res.Snapshot.Verdict.Error != "" {
		t.Errorf("verdict %+v: want the cut checked", res.Snapshot.Verdict)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the snapshot took %v: its commit waited for the dead agent's verify", d)
	}
}

// TestInspectVerifySurvivesAnAgentKilledMidVerify (issue 21): `inspect --verify`
// verifies every set on its node (AgentVerifierWatched, as cmd wires it). The agent
// of one node is killed (-9) while its worker verifies. Restarted, it is asked again
// at once and the verdict is whole; left dead, the verify fails as soon as the
// coordinator stops hearing from it, naming the node and what to do. Unwatched
// (AgentVerifier), both wait for the verify's timeout (40 s here, 2 min in cmd).
func TestInspectVerifySurvivesAnAgentKilledMidVerify(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(map[bool]string{true: "restarted", false: "dead"}[restart], func(t *testing.T) {
			e := newKillEnv(t, nil, func(e *killEnv, c *coordinator.Config) {
				c.Verify = coordinator.AgentVerifierWatched(c.Bus, 40*time.Second, func(n string) (time.Time, bool) { return e.svc.AgentAlive(n) })
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "iv", Stack: "bank", Algorithm: "blocking"}); err != nil {
				t.Fatal(err)
			}
			c0 := bankStack().Containers[0]
			home := c0.Node
			bs := killAgentMidVerify(t, e, home, node.SetID("iv", c0.Key()), restart)
			start := time.Now()
			res, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "iv", Verify: true})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("inspect --verify with %s's agent killed while it verified: %v (after %v)", home, err, took.Round(time.Millisecond))
			}
			bs.requireEntered(t, "inspect's verify")
			v := res.Snapshot.Verdict
			switch {
			case v == nil:
				t.Fatal("inspect --verify returned no verdict")
			case restart && (v.Error != "" || !v.Consistent):
				t.Errorf("verdict %+v: want the restarted agent asked again and the cut checked", v)
			case !restart && (!strings.Contains(v.Error, "node "+home) || !strings.Contains(v.Error, "start the agent there")):
				t.Errorf("verdict error %q: want one naming node %s and saying to start its agent", v.Error, home)
			}
			if took > 15*time.Second {
				t.Errorf("inspect --verify took %v: it waited for the dead agent's verify", took)
			}
		})
	}
}

// TestReplicaCopySurvivesAnAgentKilledMidSend (issue 21, fault seed 1905): after a
// snapshot with replicas commits, each set is copied to another node by its node's
// agent. That agent is killed (-9) while its worker sends, and restarted: the copy
// must be asked again of the restarted agent, not wait for the lost answer until the
// copy's timeout (the snapshot's CLI waited 5 min on the lab, then reported the copy
// failed).
func TestReplicaCopySurvivesAnAgentKilledMidSend(t *testing.T) {
	e := newKillEnv(t, nil)
	c0 := bankStack().Containers[0]
	home := c0.Node
	bs := killAgentMidSend(t, e, home, node.SetID("rk", c0.Key()), true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "rk", Stack: "bank", Algorithm: "blocking", Replicas: 2})
	if err != nil {
		t.Fatalf("snapshot with %s's agent killed and restarted while it copied %s's set: %v (after %v)", home, c0.Key(), err, time.Since(start).Round(time.Millisecond))
	}
	bs.requireEntered(t, "the copy")
	for _, c := range res.Snapshot.Containers {
		if c.Key() == c0.Key() && len(c.Copies) == 0 {
			t.Errorf("%s has no copy after its node's agent restarted mid-copy", c.Key())
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the snapshot took %v: it waited for the dead agent's copy", d)
	}
}

package restore_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// liveHost is a restore.Host whose Live workers are fixed (the rest is not called).
type liveHost struct {
	restore.Host
	nodes []string
}

func (h liveHost) Live() []store.Worker {
	var out []store.Worker
	for _, n := range h.nodes {
		out = append(out, store.Worker{Node: n})
	}
	return out
}

// fakeChecks is a restore.Nodes whose Standalone answers from lists or errs by node
// (the other calls are not made).
type fakeChecks struct {
	restore.Nodes
	lists map[string][]node.Standalone
	errs  map[string]error
}

func (f fakeChecks) Standalone(ctx context.Context, nodeName, stack string) ([]node.Standalone, error) {
	if err := f.errs[nodeName]; err != nil {
		return nil, err
	}
	return f.lists[nodeName], nil
}

// TestStandaloneListedThroughConfigNodes: Restores reaches the nodes through
// Config.Nodes: a node without an agent (bus.ErrNoResponders) is skipped, another
// node's failure is reported with its name, the listed containers come back.
func TestStandaloneListedThroughConfigNodes(t *testing.T) {
	nodes := fakeChecks{
		lists: map[string][]node.Standalone{"n1": {{ID: "c1", Service: "bank_holder", Name: "bank_holder.1"}}},
		errs:  map[string]error{"n2": bus.ErrNoResponders},
	}
	newRestores := func(n restore.Nodes, live ...string) *restore.Restores {
		r, err := restore.New(restore.Config{Host: liveHost{nodes: live}, Bus: bus.NewNetwork().Connect(), Nodes: n,
			Store: store.NewMemory(), NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	got, err := newRestores(nodes, "n1", "n2").StandaloneContainers(context.Background(), "bank")
	if err != nil {
		t.Fatalf("n2 has no agent, so it is skipped: %v", err)
	}
	if len(got) != 1 || got[0].Node != "n1" || got[0].ContainerID != "c1" || got[0].Service != "bank_holder" {
		t.Fatalf("containers: %+v; want c1 (bank_holder) on n1", got)
	}
	nodes.errs["n3"] = errors.New("docker is down")
	_, err = newRestores(nodes, "n1", "n2", "n3").StandaloneContainers(context.Background(), "bank")
	if err == nil || !strings.Contains(err.Error(), "node n3") || !strings.Contains(err.Error(), "docker is down") {
		t.Fatalf("err = %v; want node n3's failure", err)
	}
}

// TestAgentNodesNoAgentMatchesBoth: a call no agent answers fails with an error that
// says so and matches node.ErrUnavailable and bus.ErrNoResponders.
func TestAgentNodesNoAgentMatchesBoth(t *testing.T) {
	a := restore.AgentNodes{Bus: bus.NewNetwork().Connect(), Timeout: time.Second}
	_, err := a.Standalone(context.Background(), "n1", "bank")
	if !errors.Is(err, node.ErrUnavailable) || !errors.Is(err, bus.ErrNoResponders) || !strings.Contains(err.Error(), "no live worker answers on") {
		t.Fatalf("err = %v; want no live worker, matching node.ErrUnavailable and bus.ErrNoResponders", err)
	}
}

// TestAgentNodesStopWaitingForADeadAgent: a call whose agent took the request and
// then is no longer heard from (killed, not restarted) fails as soon as the
// coordinator's liveness says so, naming the node and matching node.ErrUnavailable,
// instead of waiting for its Timeout; it is not repeated to a dead agent.
func TestAgentNodesStopWaitingForADeadAgent(t *testing.T) {
	net := bus.NewNetwork()
	var asked atomic.Int32
	sub, err := net.Connect().Subscribe(node.RemoveSubject("n1"), func(m *bus.Msg) { asked.Add(1) }) // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	started := time.Now()
	deadAt := started.Add(200 * time.Millisecond)
	a := restore.AgentNodes{Bus: net.Connect(), Timeout: time.Minute,
		Agent: func(string) (time.Time, bool) { return started, time.Now().Before(deadAt) }}
	err = a.Remove(context.Background(), "n1", []string{"c1"})
	if d := time.Since(started); d > 2*time.Second {
		t.Fatalf("the call took %v: it waited for the dead agent", d)
	}
	if !errors.Is(err, node.ErrUnavailable) || !strings.Contains(err.Error(), "node n1") || !strings.Contains(err.Error(), "not heard from") {
		t.Fatalf("err = %v; want the agent of node n1 not heard from, matching node.ErrUnavailable", err)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("asked %d times; want once (a dead agent is not asked again)", n)
	}
}

// TestAgentNodesWaitLazy: WaitLazy returns the page server's outcome as the source's
// agent answers it (an error code crosses the bus: node.ErrNotFound when the worker
// knows no such dump), and fails as soon as that agent is lost while the pages still
// flow, matching node.ErrUnavailable and naming the node: each is data loss for the
// caller, never success.
func TestAgentNodesWaitLazy(t *testing.T) {
	net := bus.NewNetwork()
	sub, err := net.Connect().Subscribe(node.WaitLazySubject("n1"), func(m *bus.Msg) {
		var rep node.WaitLazyReply
		rep.Set(node.Mark(errors.New("worker n1: set s1.web: no post-copy page server of this set on this node"), node.ErrNotFound))
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	a := restore.AgentNodes{Bus: net.Connect(), Timeout: time.Minute}
	if err := a.WaitLazy(context.Background(), "n1", "s1.web"); !errors.Is(err, node.ErrNotFound) || !strings.Contains(err.Error(), "no post-copy page server") {
		t.Fatalf("err = %v; want the worker's node.ErrNotFound", err)
	}

	silent, err := net.Connect().Subscribe(node.WaitLazySubject("n2"), func(m *bus.Msg) {}) // pages still flowing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	started := time.Now()
	deadAt := started.Add(200 * time.Millisecond)
	a.Agent = func(string) (time.Time, bool) { return started, time.Now().Before(deadAt) }
	err = a.WaitLazy(context.Background(), "n2", "s1.web")
	if !errors.Is(err, node.ErrUnavailable) || !strings.Contains(err.Error(), "node n2") {
		t.Fatalf("err = %v; want the agent of node n2 lost, matching node.ErrUnavailable", err)
	}
}

package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// startAgent runs an agent of node n1 on conn's network until the test ends.
func startAgent(t *testing.T, cfg agent.Config) {
	t.Helper()
	cfg.Node, cfg.Algorithms, cfg.TickPeriod = "n1", lookup, 10*time.Millisecond
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// ask sends a raw request to subject until the agent (starting) answers, and decodes
// the reply into rep.
func ask(t *testing.T, conn bus.Transport, subject string, req []byte, rep any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		out, err := conn.Request(ctx, subject, req)
		cancel()
		if err == nil {
			if err := json.Unmarshal(out, rep); err != nil {
				t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s: %v", subject, err)
		}
		time.Sleep(10 * time.Millisecond) // the agent subscribes as it starts
	}
}

// Errors cross the bus as codes: the coordinator's side matches the contract's
// sentinels with errors.Is on the decoded reply, without parsing its message.
func TestAgentRepliesCarryErrorCodes(t *testing.T) {
	net := bus.NewNetwork()
	ex := worker.NewFake("n1")
	ex.FailDrop = fmt.Errorf("worker n1: drop set s1.web: %w", node.ErrNoSuchSet)
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: ex.Roles()})
	conn := net.Connect()

	var drop node.DropReply
	b, _ := json.Marshal(node.DropRequest{Set: "s1.web"})
	ask(t, conn, node.DropSubject("n1"), b, &drop)
	if err := drop.Err(); !errors.Is(err, node.ErrNoSuchSet) || !errors.Is(err, node.ErrNotFound) || err.Error() != ex.FailDrop.Error() {
		t.Fatalf("drop: %v, want node.ErrNoSuchSet with the worker's message", err)
	}

	var bad node.SendReply
	ask(t, conn, node.SendSubject("n1"), []byte("{not json"), &bad)
	if err := bad.Err(); !errors.Is(err, node.ErrInvalidArgument) {
		t.Fatalf("undecodable request: %v, want node.ErrInvalidArgument", err)
	}

	var ok node.DropReply
	b, _ = json.Marshal(node.DropRequest{Set: "s2.web"})
	ex.FailDrop = nil
	ask(t, conn, node.DropSubject("n1"), b, &ok)
	if err := ok.Err(); err != nil {
		t.Fatalf("drop of a missing set: %v, want success", err)
	}
}

// An agent without a worker for an operation answers node.ErrNoWorker (unavailable).
func TestAgentWithoutRestorerAnswersUnavailable(t *testing.T) {
	net := bus.NewNetwork()
	f := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: worker.Roles{Holder: f, Dumper: f, Inspector: f}})
	var rep node.RestoreReply
	b, _ := json.Marshal(node.RestoreRequest{Set: "s1.web"})
	ask(t, net.Connect(), node.RestoreSubject("n1"), b, &rep)
	if err := rep.Err(); !errors.Is(err, node.ErrNoWorker) || !errors.Is(err, node.ErrUnavailable) {
		t.Fatalf("restore on an agent without restorer: %v, want node.ErrNoWorker", err)
	}
}

package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// TestAgentRestartAbortsItsSnapshots: an agent that dies and is restarted at once (by a
// supervisor, before its heartbeats are missed) lost its roles in the running snapshot:
// the coordinator sees the new agent's start in its heartbeat and aborts the snapshot
// then, naming the restart, instead of waiting for the snapshot's timeout (found by the
// fault-injection lab test: 2 min).
func TestAgentRestartAbortsItsSnapshots(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	defer close(stall)
	e.execs["lab-3"].Stall["ctr3"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-r"); errc <- err }()
	waitFor(t, "snapshot dumping", func() bool {
		m, err := e.store.Get(context.Background(), "snap-r")
		return err == nil && m.State == store.StateDumping
	})
	// What a new agent of lab-3 sends (a killed agent sends no "leaving"): the same node,
	// another start, well within the 500 ms heartbeat timeout.
	start := time.Now()
	b, _ := json.Marshal(node.Heartbeat{Worker: store.Worker{Node: "lab-3"}, Started: start})
	if err := e.net.Connect().Publish(context.Background(), node.HeartbeatSubject, b); err != nil {
		t.Fatal(err)
	}
	// Decided at once (the call itself returns only once the nodes report the
	// containers released, or after 5 s naming the one stuck in its dump).
	for {
		m, err := e.store.Get(context.Background(), "snap-r")
		if err == nil && m.State == store.StateAborted {
			break
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("not aborted %v after the restart, want well before the snapshot timeout (5 s)", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "lab-3") || !strings.Contains(err.Error(), "agent restarted") {
			t.Fatalf("snapshot ended with %v, want aborted naming lab-3's agent restart", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot call did not return after its abort")
	}
}

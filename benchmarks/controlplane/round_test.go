package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// TestRoundOverRealNATS: 50 workers on a real (embedded) NATS server answer every
// round, and the BENCH lines name the baseline and the target ratios.
func TestRoundOverRealNATS(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, 50, 3, 1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BENCH controlplane transport=nats workers=1 ", "BENCH controlplane transport=nats workers=50 rounds=3 ", "vs_1_worker_p50=", "p99_of_target="} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRoundWaitsForEveryWorker: a round with a worker that never answers does not end
// before its deadline, and says how many answered.
func TestRoundWaitsForEveryWorker(t *testing.T) {
	network := bus.NewNetwork()
	connect := func(context.Context, string) (bus.Transport, error) { return network.Connect(), nil }
	ws, err := StartWorkers(context.Background(), connect, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c, err := NewCoordinator(network.Connect(), 4) // one more than answer
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Round(ctx)
	if err == nil || !strings.Contains(err.Error(), "3 of 4 answers") {
		t.Fatalf("round with a silent worker: err = %v, want 3 of 4 answers before the deadline", err)
	}
}

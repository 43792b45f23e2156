package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// swarmckpt events prints each event of the stream (text and JSON) until Ctrl-C.
func TestEventsFollowsUntilInterrupted(t *testing.T) {
	for _, output := range []string{"text", "json"} {
		n := bus.NewNetwork()
		out := &syncBuf{}
		c := &cli{stdout: out, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			transport: func() bus.Transport { return n.Connect() }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runEvents(ctx, c, []string{"--output", output}) }()
		pub := events.Bus{T: n.Connect()}
		want := `hold-timed-out`
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event printed: %q", output, out.String())
			}
			_ = pub.Publish(ctx, events.Event{Kind: events.HoldTimedOut, Node: "lab-2", Reason: "checkpoint too slow"})
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("%s: events after Ctrl-C: %v", output, err)
		}
		line := strings.SplitN(out.String(), "\n", 2)[0]
		switch output {
		case "text":
			if !strings.Contains(line, "hold-timed-out node=lab-2") || !strings.Contains(line, `reason="checkpoint too slow"`) {
				t.Errorf("text line %q", line)
			}
		case "json":
			if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"kind":"hold-timed-out"`) || !strings.Contains(line, `"node":"lab-2"`) {
				t.Errorf("json line %q", line)
			}
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/window"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHoldersOverLoopback runs three real holders over loopback TCP, lets them trade,
// and checks the query's audit, then breaks the invariant on purpose and checks the
// query notices.
func TestHoldersOverLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const k = 3
	var peers, https []string
	for i := 0; i < k; i++ {
		peers = append(peers, freeAddr(t))
		https = append(https, freeAddr(t))
	}
	errc := make(chan error, k)
	for i := 0; i < k; i++ {
		cfg := holderConfig{ID: i + 1, Count: k, Initial: 100, Interval: time.Millisecond, MaxAmount: 7,
			Listen: peers[i], HTTP: https[i], Peers: peers, Seed: 1}
		go func() { errc <- runHolder(ctx, log, cfg) }()
	}
	// Poll until every holder is connected to all peers and has traded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		states, err := readStates(ctx, https, time.Time{}, nil)
		ready := err == nil
		for _, s := range states {
			ready = ready && len(s.ConnectedPeers) == k-1 && s.TransfersReceived > 20
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holders did not connect and trade within 10s: err=%v states=%+v", err, states)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out bytes.Buffer
	q := queryConfig{Holders: https, Count: k, Initial: 100, Settle: 5 * time.Second}
	if err := runQuery(ctx, &out, q); err != nil {
		t.Fatalf("query of a healthy bank failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "total=300 expected=300 OK") {
		t.Fatalf("query output lacks the OK total line:\n%s", out.String())
	}
	states, err := readStates(ctx, https, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Reconnects != 0 || s.SeqAnomalies != 0 || s.Paused {
			t.Fatalf("holder %d after query: reconnects=%d anomalies=%d paused=%v (query must resume)",
				s.ID, s.Reconnects, s.SeqAnomalies, s.Paused)
		}
	}
	// GET /window: every holder saw its transfers acked, with a latency, since start.
	for _, h := range https {
		resp, err := http.Get(fmt.Sprintf("http://%s/window?from=%d", h, time.Now().Add(-time.Minute).UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		var w window.Stats
		err = json.NewDecoder(resp.Body).Decode(&w)
		resp.Body.Close()
		if err != nil || w.Events < 20 || w.MaxMS <= 0 || w.StallMS <= 0 {
			t.Fatalf("holder %s /window = %+v (%v), want >= 20 acked transfers with latencies and a stall", h, w, err)
		}
	}
	// A wrong expectation must make the query fail.
	q.Initial = 101
	out.Reset()
	if err := runQuery(ctx, &out, q); !errors.Is(err, ErrAudit) {
		t.Fatalf("query expecting initial 101 returned %v, want ErrAudit\n%s", err, out.String())
	}
	cancel()
	for i := 0; i < k; i++ {
		if err := <-errc; err != nil {
			t.Errorf("holder stopped with %v", err)
		}
	}
}

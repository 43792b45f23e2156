package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmckpt/swarmckpt/metrics"
)

// Listen serves the registry it is given (not the global one) at /metrics, and stops
// when its context ends.
func TestListenServesTheGivenRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewCoordinator(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Aborted("blocking", "timeout")
	var nilM *metrics.Coordinator
	nilM.Aborted("blocking", "timeout") // nil-safe: records nothing
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := metrics.Listen(ctx, "127.0.0.1:0", reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	get := func() (string, error) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `swarmckpt_snapshot_failures_total{algorithm="blocking",reason="timeout"} 1`+"\n") {
		t.Fatalf("scrape lacks the failure:\n%s", body)
	}
	if strings.Contains(body, "go_goroutines") {
		t.Fatal("scrape has the global registry's Go collector: want only the given registry")
	}
	if _, err := metrics.NewCoordinator(reg); err == nil {
		t.Fatal("registering the coordinator metrics twice on one registry succeeded")
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := get(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("metrics endpoint still serving after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := metrics.Listen(context.Background(), "256.0.0.1:1", reg, slog.Default()); err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Fatalf("listen on a bad address: %v, want an error naming --metrics", err)
	}
}

package worker_test

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// Operations through the worker's API show up in its metrics: each op's duration,
// a failure by op, the time the container stayed frozen and the dumped bytes.
func TestWorkerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewWorker(reg)
	if err != nil {
		t.Fatal(err)
	}
	n := newFakeNodeConfig(t, "n1", dump.Fake{}, func(c *worker.Config) { c.Metrics = m })
	n.add("web", 42)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &worker.Client{Addr: n.w.Addr()}
	deadline := time.Now().Add(time.Minute)
	if err := c.Lock(ctx, "web", nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := c.Freeze(ctx, "web", deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dump(ctx, "web", "s1-web", true); err != nil {
		t.Fatal(err)
	}
	if err := c.Thaw(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unlock(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Freeze(ctx, "nope", deadline); err == nil {
		t.Fatal("freeze of an unknown container succeeded")
	}
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`swarmckpt_worker_operation_seconds_count{op="lock"} 1`,
		`swarmckpt_worker_operation_seconds_count{op="freeze"} 2`,
		`swarmckpt_worker_operation_seconds_count{op="dump"} 1`,
		`swarmckpt_worker_operation_seconds_count{op="thaw"} 1`,
		`swarmckpt_worker_operation_seconds_count{op="unlock"} 1`,
		`swarmckpt_worker_operation_failures_total{op="freeze"} 1`,
		`swarmckpt_worker_frozen_seconds_count 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, `swarmckpt_worker_operation_failures_total{op="dump"}`) {
		t.Error("a dump that succeeded counted as failed")
	}
	if mb := regexp.MustCompile(`(?m)^swarmckpt_worker_image_bytes_total (\S+)$`).FindStringSubmatch(body); mb == nil || mb[1] == "0" {
		t.Errorf("dumped bytes: %v, want the set's size", mb)
	}
}

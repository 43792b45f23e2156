package coordinator_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// scrape GETs the metrics of reg as Prometheus does.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// sample returns the value of the sample named by series (name{labels}) in a scrape,
// failing the test when it is absent.
func sample(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in the scrape:\n%s", series, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// After a committed and an aborted snapshot, the scrape has the durations of every
// phase, each container's frozen and dump time, the image bytes and the failure by
// its reason, labelled with the algorithm.
func TestMetricsAfterSnapshots(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewCoordinator(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *coordinator.Config) { c.Metrics = m }, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-1"); err != nil {
		t.Fatal(err)
	}
	e.execs["lab-2"].FailDump["ctr5"] = errors.New("criu: dump failed: unsupported resource")
	if _, err := e.snapshot("snap-2"); err == nil {
		t.Fatal("snapshot with a failing dump committed")
	}
	body := scrape(t, reg)
	for _, phase := range []string{"prepare", "run", "commit", "total"} {
		if n := sample(t, body, `swarmckpt_snapshot_duration_seconds_count{algorithm="blocking",phase="`+phase+`"}`); phase != "prepare" && phase != "run" && n != 1 {
			t.Errorf("phase %s observed %v times, want 1 (the committed snapshot)", phase, n)
		}
	}
	if n := sample(t, body, `swarmckpt_snapshot_duration_seconds_count{algorithm="blocking",phase="prepare"}`); n != 2 {
		t.Errorf("prepare observed %v times, want 2 (both snapshots)", n)
	}
	if n := sample(t, body, `swarmckpt_container_frozen_seconds_count{algorithm="blocking"}`); n != 5 {
		t.Errorf("frozen time of %v containers, want the 5 of the committed snapshot", n)
	}
	if n := sample(t, body, `swarmckpt_container_dump_seconds_count{algorithm="blocking"}`); n != 5 {
		t.Errorf("dump time of %v containers, want 5", n)
	}
	if b := sample(t, body, `swarmckpt_snapshot_image_bytes_total{algorithm="blocking"}`); b <= 0 {
		t.Errorf("image bytes %v, want the committed snapshot's", b)
	}
	if n := sample(t, body, `swarmckpt_snapshots_total{algorithm="blocking",result="committed"}`); n != 1 {
		t.Errorf("%v committed, want 1", n)
	}
	if n := sample(t, body, `swarmckpt_snapshots_total{algorithm="blocking",result="aborted"}`); n != 1 {
		t.Errorf("%v aborted, want 1", n)
	}
	if n := sample(t, body, `swarmckpt_snapshot_failures_total{algorithm="blocking",reason="container-failed"}`); n != 1 {
		t.Errorf("%v failures for a failed dump, want 1 with reason container-failed", n)
	}
}

// A snapshot left unfinished by a dead coordinator (a killed leader) and aborted by the
// recovery of the next one is counted by that one: aborted, reason
// coordinator-restart. Before, only the snapshots a coordinator ran itself were.
func TestMetricsCountSnapshotsAbortedByRecovery(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	m := &store.Manifest{ID: "snap-dead", Stack: "bank", Algorithm: "blocking", State: store.StatePreparing, Epoch: 1,
		Coordinator: "dead", CreatedAt: time.Now()}
	for _, c := range bankStack().Containers {
		m.Containers = append(m.Containers, store.Container{Service: c.Service, Slot: c.Slot, Node: c.Node, ContainerID: c.ContainerID})
	}
	if err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.State = store.StateDumping
	m.Record = []byte(`{"algorithm":"blocking","epoch":1,"snapshot":"snap-dead","phase":"active","containers":[{"id":"ctr1","node":"lab-1"}]}`)
	if err := st.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	mx, err := metrics.NewCoordinator(reg)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := coordinator.New(coordinator.Config{Name: "c2", Bus: bus.NewNetwork().Connect(), Store: st, Metrics: mx,
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, PlanTimeout: 100 * time.Millisecond,
		RecoverWait: 100 * time.Millisecond, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the dead coordinator's snapshot aborted by the recovery", func() bool {
		got, err := st.Get(ctx, "snap-dead")
		return err == nil && got.State == store.StateAborted
	})
	waitFor(t, "the recovered abort counted", func() bool {
		return strings.Contains(scrape(t, reg), `swarmckpt_snapshot_failures_total{algorithm="blocking",reason="coordinator-restart"} 1`)
	})
	if n := sample(t, scrape(t, reg), `swarmckpt_snapshots_total{algorithm="blocking",result="aborted"}`); n != 1 {
		t.Errorf("%v aborted, want the 1 the recovery aborted", n)
	}
}

// An agent with metrics (swarmckpt agent --metrics) counts its container actions and
// node operations by op and result, the holds it took and how long each lasted; after
// a committed blocking snapshot nothing is held.
func TestAgentMetricsAfterSnapshots(t *testing.T) {
	e := newEnvWith(t, nil) // the agents below have metrics
	regs := map[string]*prometheus.Registry{}
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		regs[n] = prometheus.NewRegistry()
		am, err := metrics.NewAgent(regs[n])
		if err != nil {
			t.Fatal(err)
		}
		ex := worker.NewFake(n)
		e.execs[n] = ex
		a, err := agent.New(agent.Config{Node: n, Bus: e.net.Connect(), Worker: ex.Roles(), Algorithms: lookup, Metrics: am,
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 50 * time.Millisecond, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	waitFor(t, "the agents heard", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		st, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(st.Workers) == 3
	})
	if _, err := e.snapshot("snap-am"); err != nil {
		t.Fatal(err)
	}
	e.execs["lab-2"].FailDump["ctr5"] = errors.New("criu: dump failed: unsupported resource")
	if _, err := e.snapshot("snap-am2"); err == nil {
		t.Fatal("snapshot with a failing dump committed")
	}
	body := scrape(t, regs["lab-2"]) // ctr2 and ctr5
	if n := sample(t, body, `swarmckpt_agent_operations_total{op="dump",result="ok"}`); n < 2 {
		t.Errorf("%v dumps ok on lab-2, want at least ctr2 and ctr5 of the committed snapshot", n)
	}
	if n := sample(t, body, `swarmckpt_agent_operations_total{op="dump",result="internal"}`); n != 1 {
		t.Errorf("%v failed dumps on lab-2, want ctr5's one (result internal)", n)
	}
	for _, what := range []string{"lock", "freeze"} {
		taken := sample(t, body, `swarmckpt_agent_holds_total{what="`+what+`"}`)
		if taken < 2 {
			t.Errorf("%v %s holds taken on lab-2, want at least 2 (ctr2, ctr5)", taken, what)
		}
		waitFor(t, "lab-2's "+what+" holds released", func() bool {
			b := scrape(t, regs["lab-2"])
			return sample(t, b, `swarmckpt_agent_holds{what="`+what+`"}`) == 0 &&
				sample(t, b, `swarmckpt_agent_held_seconds_count{what="`+what+`"}`) == taken
		})
	}
	// Node operations count too: the aborted snapshot's image sets were dropped.
	if n := sample(t, scrape(t, regs["lab-1"]), `swarmckpt_agent_operations_total{op="drop",result="ok"}`); n < 1 {
		t.Errorf("%v drops on lab-1, want the aborted snapshot's", n)
	}
}

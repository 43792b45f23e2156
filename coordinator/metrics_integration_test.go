package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsAfterSnapshots: after the committed snapshots of SnapshotBankVerified, the
// coordinator's --metrics endpoint shows them (durations by phase, frozen times,
// bytes, per algorithm), node 1's worker its dumps and node 1's agent its holds and
// operations; the agents log JSON (--log-format json).
func (e *e2e) metricsAfterSnapshots(t *testing.T) {
	get := func(port int) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET metrics: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET metrics: %d %v", resp.StatusCode, err)
		}
		return string(b)
	}
	value := func(body, series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in the metrics:\n%s", series, tail(body, 4000))
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	coord := get(e.ports[4])
	for _, algo := range []string{"blocking", "chandy-lamport", "minimal"} {
		l := `algorithm="` + algo + `"`
		if n := value(coord, `swarmckpt_snapshots_total{`+l+`,result="committed"}`); n < 1 {
			t.Errorf("%s: %v committed snapshots in the metrics, want at least 1", algo, n)
		}
		for _, phase := range []string{"prepare", "run", "commit", "total"} {
			if n := value(coord, `swarmckpt_snapshot_duration_seconds_count{`+l+`,phase="`+phase+`"}`); n < 1 {
				t.Errorf("%s: phase %s observed %v times", algo, phase, n)
			}
		}
		if n := value(coord, `swarmckpt_container_frozen_seconds_count{`+l+`}`); n < 5 {
			t.Errorf("%s: frozen time of %v containers, want the bank's 5 at least", algo, n)
		}
		if b := value(coord, `swarmckpt_snapshot_image_bytes_total{`+l+`}`); b < 1<<20 {
			t.Errorf("%s: %v image bytes, want the bank's images (MiBs)", algo, b)
		}
	}
	w := get(e.ports[5])
	if b := value(w, `swarmckpt_worker_image_bytes_total`); b <= 0 {
		t.Errorf("worker of %s-1: %v dumped bytes", e.name, b)
	}
	if !strings.Contains(w, `swarmckpt_worker_operation_seconds_count{op="lock"}`) || !strings.Contains(w, `swarmckpt_worker_operation_seconds_count{op="dump`) {
		t.Errorf("worker metrics lack the lock and dump operations:\n%s", tail(w, 4000))
	}
	a := get(e.ports[6])
	for _, what := range []string{"lock", "freeze"} {
		if n := value(a, `swarmckpt_agent_holds_total{what="`+what+`"}`); n < 1 {
			t.Errorf("agent of %s-1: %v %s holds taken", e.name, n, what)
		}
		if n := value(a, `swarmckpt_agent_held_seconds_count{what="`+what+`"}`); n < 1 {
			t.Errorf("agent of %s-1: %v %s holds released", e.name, n, what)
		}
	}
	if n := value(a, `swarmckpt_agent_operations_total{op="dump",result="ok"}`); n < 1 {
		t.Errorf("agent of %s-1: %v dumps", e.name, n)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "agent-"+e.name+"-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var obj map[string]any
		if json.Unmarshal([]byte(l), &obj) == nil && obj["msg"] != nil && obj["level"] != nil {
			n++
		}
	}
	if n == 0 {
		t.Errorf("the agent (--log-format json) logged no JSON line:\n%s", tail(string(b), 2000))
	}
	t.Logf("coordinator metrics: %d bytes; worker: %d bytes; agent: %d bytes; agent JSON log lines: %d", len(coord), len(w), len(a), n)
}

package main

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/swarmckpt/swarmckpt/sim"
)

// NATSLatency is the control plane's latency measured on this machine: a real NATS
// server (embedded, loopback) and two client connections.
type NATSLatency struct {
	OneWayP50MS float64 `json:"one_way_p50_ms"` // half a request/reply round trip
	OneWayP90MS float64 `json:"one_way_p90_ms"`
	PublishMS   float64 `json:"publish_ms"` // a publisher's time per message, back to back
	Samples     int     `json:"samples"`
}

// MeasureNATS times n request/reply round trips and n back-to-back publishes through
// an embedded NATS server on 127.0.0.1.
func MeasureNATS(ctx context.Context, n int) (NATSLatency, error) {
	var out NATSLatency
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return out, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return out, fmt.Errorf("nats server not ready after 10s")
	}
	a, err := nats.Connect(s.ClientURL())
	if err != nil {
		return out, err
	}
	defer a.Close()
	b, err := nats.Connect(s.ClientURL())
	if err != nil {
		return out, err
	}
	defer b.Close()
	if _, err := b.Subscribe("calib.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return out, err
	}
	if _, err := b.Subscribe("calib.sink", func(*nats.Msg) {}); err != nil {
		return out, err
	}
	if err := b.Flush(); err != nil {
		return out, err
	}
	payload := make([]byte, 256) // about one protocol.Envelope
	rtt := make([]float64, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := a.RequestWithContext(ctx, "calib.echo", payload); err != nil {
			return out, fmt.Errorf("nats request: %w", err)
		}
		rtt = append(rtt, float64(time.Since(t0).Microseconds())/1000)
	}
	t0 := time.Now()
	for range n {
		if err := a.Publish("calib.sink", payload); err != nil {
			return out, err
		}
	}
	if err := a.Flush(); err != nil {
		return out, err
	}
	out.PublishMS = float64(time.Since(t0).Microseconds()) / 1000 / float64(n)
	out.OneWayP50MS, out.OneWayP90MS, out.Samples = Pct(rtt, 0.5)/2, Pct(rtt, 0.9)/2, n
	return out, nil
}

var coresRe = regexp.MustCompile(`(\d+) cores`)

// Calibrate derives the simulator's parameters from the lab's raw measurements in r
// and the control plane's measured latency. Every parameter says how it was obtained
// (Calibration.How).
func Calibrate(r Results, nl NATSLatency) sim.Calibration {
	c := sim.Calibration{Source: fmt.Sprintf("benchmarks/algorithms/results.json (run of %s, %s)", r.Started, r.Host),
		Hosts: 1, CPUsPerHost: 2, How: map[string]string{}}
	if m := coresRe.FindStringSubmatch(r.Host); m != nil {
		c.CPUsPerHost, _ = strconv.ParseFloat(m[1], 64)
	}
	c.How["hosts"] = "the lab's 3 nodes are network namespaces of one machine: one disk, one set of cores"
	c.How["cpus_per_host"] = "the lab machine's cores (results.json host)"

	if fitDumps(r, &c, 0) {
		c.How["dump_overhead_ms,disk_mbps"] = "least squares over the uncoordinated snapshots: median dump_ms - dump_start_ms = overhead x max(N/cores, 1) + N x median MB / bandwidth"
	}
	// Freeze: chandy-lamport freezes a container just for its own dump: frozen - dump
	// is a freeze and a thaw.
	var fr []float64
	for _, m := range r.Measurements {
		if m.Method == "chandy-lamport" && m.Error == "" {
			for _, ct := range m.Containers {
				fr = append(fr, (ct.FrozenMS-ct.DumpMS)/2)
			}
		}
	}
	if len(fr) > 0 {
		c.FreezeMs = math.Max(Median(fr), 0.5)
		c.How["freeze_ms"] = fmt.Sprintf("median over %d chandy-lamport containers of (frozen - dump) / 2", len(fr))
	}
	// Lock: blocking locks before it freezes and unlocks after it thaws.
	// Every container of a blocking snapshot locks at once: a lock's CPU time is its
	// wall time over the cores' share, as for the dumps' fixed cost.
	var lk, lc []float64
	for _, m := range r.Measurements {
		if m.Method == "blocking" && m.Error == "" {
			share := math.Max(float64(len(m.Containers))/c.CPUsPerHost, 1)
			for _, ct := range m.Containers {
				lk = append(lk, (ct.LockedMS-ct.FrozenMS)/2)
				lc = append(lc, (ct.LockedMS-ct.FrozenMS)/2/share)
			}
		}
	}
	if len(lk) > 0 {
		c.LockMs = math.Max(Median(lk), 0.5)
		c.How["lock_ms"] = fmt.Sprintf("median over %d blocking containers of (locked - frozen) / 2", len(lk))
		c.LockCPUMs = math.Max(Median(lc), 0.5)
		c.How["lock_cpu_ms"] = fmt.Sprintf("median over %d blocking containers of (locked - frozen) / 2 / max(N / cores, 1): every container locks at once, on the shared cores", len(lc))
	}
	// Client: the CLI's wall time outside the snapshot (start to commit).
	var cl, cc []float64
	var cx [][]float64
	for _, m := range r.Measurements {
		if !slices.Contains(Algorithms, m.Method) || m.Error != "" || len(m.Containers) == 0 {
			continue
		}
		commit, slowest := m.Containers[0].CommitMS, 0.0
		for _, ct := range m.Containers {
			slowest = max(slowest, ct.DumpMS)
		}
		cl = append(cl, m.TotalMS-commit)
		if m.Method == "uncoordinated" {
			cc = append(cc, commit-slowest)
			cx = append(cx, []float64{1, float64(len(m.Containers)), float64(m.Bytes) / 1e6})
		}
	}
	if len(cl) > 0 {
		c.ClientMs = math.Max(Median(cl), 0)
		c.How["client_ms"] = fmt.Sprintf("median over %d algorithm snapshots of the CLI's wall time - the snapshot's start-to-commit time", len(cl))
	}
	if nl.Samples > 0 {
		c.NetDelayMs = nl.OneWayP50MS
		c.NetJitterMs = math.Max(nl.OneWayP90MS-nl.OneWayP50MS, 0.001)
		c.SendCostMs = nl.PublishMS
		c.How["net_delay_ms,net_jitter_ms"] = fmt.Sprintf("embedded NATS on loopback, %d request/reply round trips: half the p50, p90 - p50", nl.Samples)
		c.How["send_cost_ms"] = fmt.Sprintf("embedded NATS, %d back-to-back publishes of 256 bytes: time per message", nl.Samples)
	}
	c.PersistMs = sim.DefaultConfig().PersistMs
	c.How["persist_ms"] = "not measured by the harness: the simulator's default (an etcd write)"
	if len(cx) > 2 {
		ctrl := 4*c.NetDelayMs + c.PersistMs
		y := make([]float64, len(cc))
		for i := range cc {
			y[i] = cc[i] - ctrl
		}
		if co, ok := leastSquares(cx, y); ok && co[1] >= 0 && co[2] > 0 {
			c.CommitCheckMs, c.CommitPerContainerMs, c.CommitReadMBps = math.Max(co[0], 0), co[1], 1000/co[2]
		} else {
			c.CommitCheckMs = math.Max(Median(y), 0)
		}
		c.How["commit_check_ms,commit_per_container_ms,commit_read_mbps"] = fmt.Sprintf("least squares over %d uncoordinated snapshots: (start-to-commit - slowest dump) - 4 NATS hops - persist = fixed + per container x N + MB / read bandwidth", len(cc))
	}
	return c
}

// fitDumps fits c's dump overhead and disk bandwidth for a mean start delay of start
// ms: every uncoordinated snapshot starts all dumps at once and freezes nothing else;
// its median dump time is start + overhead x max(N/C, 1) + N x MB / bandwidth (least
// squares over every measurement). False (c unchanged) when the fit fails.
func fitDumps(r Results, c *sim.Calibration, start float64) bool {
	var xs [][]float64
	var ys []float64
	for _, m := range r.Measurements {
		if m.Method != "uncoordinated" || m.Error != "" || len(m.Containers) == 0 {
			continue
		}
		var d, b []float64
		for _, ct := range m.Containers {
			d = append(d, ct.DumpMS)
			b = append(b, float64(ct.Bytes)/1e6)
		}
		n := float64(len(m.Containers))
		xs = append(xs, []float64{math.Max(n/c.CPUsPerHost, 1), n * Median(b)})
		ys = append(ys, Median(d)-start)
	}
	co, ok := leastSquares(xs, ys)
	if !ok || co[0] <= 0 || co[1] <= 0 {
		return false
	}
	c.DumpStartMs, c.DumpOverheadMs, c.DiskMBps = &start, co[0], 1000/co[1]
	return true
}

// leastSquares solves min |X b - y| (normal equations, Gauss-Jordan with partial
// pivoting); false when the system is singular.
func leastSquares(xs [][]float64, ys []float64) ([]float64, bool) {
	if len(xs) == 0 {
		return nil, false
	}
	k := len(xs[0])
	a := make([][]float64, k)
	for i := range a {
		a[i] = make([]float64, k+1)
	}
	for r, x := range xs {
		for i := range k {
			for j := range k {
				a[i][j] += x[i] * x[j]
			}
			a[i][k] += x[i] * ys[r]
		}
	}
	for col := range k {
		p := col
		for r := col + 1; r < k; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if math.Abs(a[p][col]) < 1e-12 {
			return nil, false
		}
		a[col], a[p] = a[p], a[col]
		for r := range k {
			if r != col {
				f := a[r][col] / a[col][col]
				for j := col; j <= k; j++ {
					a[r][j] -= f * a[col][j]
				}
			}
		}
	}
	out := make([]float64, k)
	for i := range k {
		out[i] = a[i][k] / a[i][i]
	}
	return out, true
}

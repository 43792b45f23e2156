package main

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
)

// SimPoint is the simulator's prediction for one algorithm at one size.
type SimPoint struct {
	Algorithm      string  `json:"algorithm"`
	Containers     int     `json:"containers"`
	Nodes          int     `json:"nodes"`
	MiB            float64 `json:"mib_per_container"`
	LatencyMS      float64 `json:"latency_ms"`
	DowntimeP50MS  float64 `json:"downtime_p50_ms"`
	DowntimeP99MS  float64 `json:"downtime_p99_ms"`
	BytesDumped    int64   `json:"bytes_dumped"`
	ConsistentText string  `json:"consistent"`
}

// SimSizes are the container counts the simulator is run at: the lab's echo stacks'
// sizes, then up to 10,000 (10 containers per node above 30, as in docs/algorithms.md).
var SimSizes = []int{3, 10, 21, 30, 100, 1000, 10000}

// RunSim runs `swarmckpt sim --algorithm all` at every size of SimSizes with the
// lab's echo stacks' shape: a ring graph (each echo client has one connection), every
// container of mib MiB (the lab's median image size), 3 nodes up to 30 containers.
func RunSim(ctx context.Context, bin string, mib float64) ([]SimPoint, error) {
	var out []SimPoint
	for _, n := range SimSizes {
		nodes := 3
		if n > 30 {
			nodes = n / 10
		}
		args := []string{"sim", "--algorithm", "all", "--containers", strconv.Itoa(n), "--nodes", strconv.Itoa(nodes),
			"--graph", "ring", "--mem-min", fmt.Sprint(mib), "--mem-max", fmt.Sprint(mib), "--quiet", "--seed", "1"}
		b, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			return out, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "BENCH sim ") {
				continue
			}
			kv := ParseLogfmt(strings.TrimPrefix(line, "BENCH sim "))
			f := func(k string) float64 { v, _ := strconv.ParseFloat(kv[k], 64); return v }
			by, _ := strconv.ParseInt(kv["bytes_dumped"], 10, 64)
			out = append(out, SimPoint{Algorithm: kv["algorithm"], Containers: n, Nodes: nodes, MiB: mib,
				LatencyMS: f("latency_ms"), DowntimeP50MS: f("downtime_p50_ms"), DowntimeP99MS: f("downtime_p99_ms"),
				BytesDumped: by, ConsistentText: kv["consistent"]})
		}
	}
	return out, nil
}

// EchoImageMiB is the median per-container image size of the echo stacks' algorithm
// snapshots (what the simulator's containers are given), 2 MiB when none was measured.
func EchoImageMiB(r Results) float64 {
	var v []float64
	for _, m := range r.Measurements {
		if slices.Contains(Algorithms, m.Method) && (strings.HasPrefix(m.Shape, "scale-") || m.Shape == "fan-in") {
			for _, c := range m.Containers {
				v = append(v, float64(c.Bytes)/(1<<20))
			}
		}
	}
	if len(v) == 0 {
		return 2
	}
	return math.Round(Median(v)*10) / 10
}

// simPlot draws the simulator's latency per algorithm against the container count (lines)
// with the lab's median snapshot times of the echo stacks (points).
func simPlot(r Results, sums []Summary) (*plot.Plot, error) {
	if len(r.Sim) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "simulator (lines) vs lab (points): snapshot time, echo stacks"
	p.Legend.Top, p.Legend.Left = false, false
	p.X.Label.Text = "containers (log)"
	p.Y.Label.Text = "ms (log)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, ticks125{}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, ticks125{}
	for i, algo := range Algorithms {
		var line, pts plotter.XYs
		for _, s := range r.Sim {
			if s.Algorithm == algo {
				line = append(line, plotter.XY{X: float64(s.Containers), Y: math.Max(s.LatencyMS, floorMS)})
			}
		}
		for _, s := range sums {
			if s.Method == algo && (strings.HasPrefix(s.Shape, "scale-") || s.Shape == "fan-in") {
				pts = append(pts, plotter.XY{X: float64(s.N), Y: math.Max(s.TotalP50, floorMS)})
			}
		}
		if len(line) > 0 {
			l, err := plotter.NewLine(line)
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i)
			p.Add(l)
			p.Legend.Add("sim "+label(algo), l)
		}
		if len(pts) > 0 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Color = plotutil.Color(i)
			sc.GlyphStyle.Shape = plotutil.Shape(i)
			p.Add(sc)
			p.Legend.Add("lab "+label(algo), sc)
		}
	}
	p.X.Min = math.Min(p.X.Min, 2) // the 3-container points off the frame's edge
	return p, nil
}

package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/sim"
)

// SimPoint is the calibrated simulator's prediction for one algorithm at one size of
// the echo stack (medians over SimSeeds seeds).
type SimPoint struct {
	Algorithm     string  `json:"algorithm"`
	Containers    int     `json:"containers"`
	Nodes         int     `json:"nodes"`
	Hosts         int     `json:"hosts"`
	MiB           float64 `json:"mib_per_container"`
	LatencyMS     float64 `json:"latency_ms"`
	DowntimeP50MS float64 `json:"downtime_p50_ms"`
	DowntimeP99MS float64 `json:"downtime_p99_ms"`
	DumpP50MS     float64 `json:"dump_p50_ms"`
	BytesDumped   int64   `json:"bytes_dumped"`
	// Consistent counts the seeds whose committed cut the checker found consistent.
	Consistent string `json:"consistent"`
}

// ShapeCheck compares the calibrated simulator with the lab on one shape and algorithm.
type ShapeCheck struct {
	Shape     string  `json:"shape"`
	Algorithm string  `json:"algorithm"`
	LabTotal  float64 `json:"lab_snapshot_ms_p50"`
	SimTotal  float64 `json:"sim_snapshot_ms_p50"`
	LabFrozen float64 `json:"lab_frozen_ms_p50"`
	SimFrozen float64 `json:"sim_frozen_ms_p50"`
	// Inconsistent counts the simulated (committed) snapshots whose cut was not
	// consistent, of Runs; LabInconsistent of LabRuns likewise for the lab.
	Inconsistent    int `json:"sim_inconsistent"`
	Runs            int `json:"sim_runs"`
	LabInconsistent int `json:"lab_inconsistent"`
	LabRuns         int `json:"lab_runs"`
}

// TotalErr and FrozenErr are sim / lab - 1.
func (c ShapeCheck) TotalErr() float64  { return c.SimTotal/c.LabTotal - 1 }
func (c ShapeCheck) FrozenErr() float64 { return c.SimFrozen/c.LabFrozen - 1 }

// SimResults is the simulator's part of results.json.
type SimResults struct {
	Calibration sim.Calibration `json:"calibration"`
	NATS        NATSLatency     `json:"nats"`
	Checks      []ShapeCheck    `json:"checks"`
	Curves      []SimPoint      `json:"curves"`
}

// SimSizes are the container counts of the simulator's curves: the lab's echo stacks'
// sizes (3 nodes on 1 host, as in the lab), then up to 10,000 (10 containers per node,
// every node its own host with the lab machine's cores and disk, echo stacks of a
// server and 20 clients).
var SimSizes = []int{3, 10, 21, 30, 100, 1000, 10000}

// SimSeeds is how many seeds each simulated point is the median of.
const SimSeeds = 7

// simAlgorithms are the algorithms, in Algorithms' order.
func simAlgorithms() ([]algorithms.Algorithm, error) {
	var out []algorithms.Algorithm
	for _, name := range Algorithms {
		a, err := registry.Lookup(name)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// shapeConfig is the simulator's model of lab shape s: its containers' image sizes
// (the lab's medians), its communication graph and the calibration.
func shapeConfig(s Shape, r Results, cal sim.Calibration) sim.Config {
	cfg := sim.DefaultConfig()
	cal.Apply(&cfg)
	cfg.Containers, cfg.Nodes, cfg.Hosts = s.N, 3, cal.Hosts
	// The coordinator makes every container of the stack a peer of every other (it does
	// not know who talks to whom); the traffic flows along the shape's graph only.
	cfg.AllPeers = true
	// One snapshot: the harness removes each snapshot after measuring it, so minimal
	// never has earlier images to reuse in the lab either.
	cfg.Rounds = 1
	cfg.IdleFraction, cfg.TrafficBytesPerMs = 0, 2 // a transfer or a line every 20 ms, each way
	small, big := imageMiB(r, s.Name)
	cfg.MemMiB = make([]float64, s.N)
	for i := range cfg.MemMiB {
		cfg.MemMiB[i] = small
	}
	switch s.Kind {
	case "bank":
		cfg.Graph = sim.AllToAll
	case "echo":
		cfg.Graph = sim.Star
	case "mixed": // the memhog (container 0) among the holders' full mesh
		cfg.Graph = sim.AllToAll
		cfg.MemMiB[0] = big
	case "memhog":
		cfg.Graph, cfg.IdleFraction = sim.Ring, 1
	}
	return cfg
}

// imageMiB is the median image size of shape's containers in the algorithms'
// snapshots: the small ones and the big one (mixed).
func imageMiB(r Results, shape string) (small, big float64) {
	var s, b []float64
	for _, m := range r.Measurements {
		if m.Shape != shape || !slices.Contains(Algorithms, m.Method) {
			continue
		}
		for _, c := range m.Containers {
			if c.Big {
				b = append(b, float64(c.Bytes)/(1<<20))
			} else {
				s = append(s, float64(c.Bytes)/(1<<20))
			}
		}
	}
	small, big = 2, 1024
	if len(s) > 0 {
		small = math.Max(Median(s), 0.1)
	}
	if len(b) > 0 {
		big = Median(b)
	}
	return small, big
}

// simFrozen is the simulated counterpart of the lab's frozen time: the downtime of
// algorithms that freeze, the dump time of those that do not (the lab takes their
// dump time as the frozen time, an upper bound).
func simFrozen(algo string, rep *sim.Report) float64 {
	if algo == "uncoordinated" || algo == "minimal" {
		return rep.DumpTime.P50
	}
	return rep.Downtime.P50
}

type simRun struct {
	latency, frozen, down99, dump, dumpMax []float64
	bytes                                  []float64
	inconsistent, committed                int
}

func runSeeds(ctx context.Context, cfg sim.Config, alg algorithms.Algorithm, seeds int) (simRun, error) {
	var out simRun
	for seed := 1; seed <= seeds; seed++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		cfg.Seed = uint64(seed)
		rep, err := sim.Run(cfg, alg)
		if err != nil {
			return out, fmt.Errorf("simulate %s, %d containers: %w", alg.Name(), cfg.Containers, err)
		}
		out.latency = append(out.latency, rep.LatencyMs)
		out.frozen = append(out.frozen, simFrozen(alg.Name(), rep))
		out.down99 = append(out.down99, rep.Downtime.P99)
		out.dump = append(out.dump, rep.DumpTime.P50)
		out.dumpMax = append(out.dumpMax, rep.DumpTime.Max)
		out.bytes = append(out.bytes, rep.BytesDumped)
		if rep.Verdict != nil {
			out.committed++
			if !rep.Verdict.Consistent() {
				out.inconsistent++
			}
		}
	}
	return out, nil
}

// RunSim calibrates the simulator from r and nl, simulates every lab shape with every
// algorithm (the per-shape checks) and the echo stack at every size of sizes (SimSizes).
func RunSim(ctx context.Context, r Results, nl NATSLatency, sizes []int) (*SimResults, error) {
	algs, err := simAlgorithms()
	if err != nil {
		return nil, err
	}
	out := &SimResults{Calibration: Calibrate(r, nl), NATS: nl}
	sums := Summarize(r)
	if err := fitStart(ctx, r, sums, &out.Calibration); err != nil {
		return out, err
	}
	if err := fitDumpsBySim(ctx, r, sums, &out.Calibration); err != nil {
		return out, err
	}
	if err := fitSlots(ctx, r, sums, &out.Calibration); err != nil {
		return out, err
	}
	for _, s := range Shapes {
		for _, alg := range algs {
			i := slices.IndexFunc(sums, func(x Summary) bool { return x.Shape == s.Name && x.Method == alg.Name() })
			if i < 0 {
				continue
			}
			run, err := runSeeds(ctx, shapeConfig(s, r, out.Calibration), alg, SimSeeds)
			if err != nil {
				return out, err
			}
			out.Checks = append(out.Checks, ShapeCheck{Shape: s.Name, Algorithm: alg.Name(),
				LabTotal: sums[i].TotalP50, SimTotal: Median(run.latency),
				LabFrozen: sums[i].FrozenP50, SimFrozen: Median(run.frozen),
				Inconsistent: run.inconsistent, Runs: run.committed,
				LabInconsistent: sums[i].Checked - sums[i].Consistent, LabRuns: sums[i].Checked})
		}
	}
	mib, _ := imageMiB(r, "scale-30")
	echo := Shape{Name: "echo", Kind: "echo"}
	for _, n := range sizes {
		echo.N = n
		cfg := shapeConfig(echo, r, out.Calibration)
		for i := range cfg.MemMiB {
			cfg.MemMiB[i] = mib
		}
		if n > 30 {
			// Beyond the lab: 10 containers per node, every node its own host (with the
			// lab machine's cores and disk), echo stacks of fan-in's size (a server and
			// 20 clients each), and a timeout long enough for the commit check of
			// 10,000 containers (the lab's per-container cost; 60 s would abort).
			cfg.Nodes, cfg.Hosts, cfg.StarSize = n/10, 0, 21
			cfg.TimeoutTicks = 36000
			// Every container a peer of every other is n x (n-1) peers and, under
			// chandy-lamport, as many markers: 10^8 at 10,000. The curves take the
			// star's neighbours as peers instead (what a coordinator that knew the
			// communication graph would send), which today's coordinator does not.
			cfg.AllPeers = false
		}
		seeds := SimSeeds
		if n >= 1000 {
			seeds = 3
		}
		for _, alg := range algs {
			run, err := runSeeds(ctx, cfg, alg, seeds)
			if err != nil {
				return out, err
			}
			out.Curves = append(out.Curves, SimPoint{Algorithm: alg.Name(), Containers: n, Nodes: cfg.Nodes,
				Hosts: max(cfg.Hosts, 0), MiB: mib, LatencyMS: Median(run.latency), DowntimeP50MS: Median(run.frozen),
				DowntimeP99MS: Median(run.down99), DumpP50MS: Median(run.dump), BytesDumped: int64(Median(run.bytes)),
				Consistent: fmt.Sprintf("%d/%d", run.committed-run.inconsistent, run.committed)})
		}
	}
	return out, nil
}

// StartDelays are the mean dump start delays (ms) fitStart tries.
var StartDelays = []float64{0, 25, 50, 75, 100, 150, 200, 300, 400}

// fitStart picks the mean dump start delay (Calibration.DumpStartMs, refitting the
// dump overhead and bandwidth for each) whose simulated uncoordinated snapshots of the
// lab's shapes with traffic come out inconsistent as often as the lab's did (the
// smallest such delay on a tie). Only the order in which independent dumps seize their
// containers decides that rate; nothing else measured in the lab shows it.
func fitStart(ctx context.Context, r Results, sums []Summary, cal *sim.Calibration) error {
	alg, err := registry.Lookup("uncoordinated")
	if err != nil {
		return err
	}
	labBad, labRuns := 0, 0
	for _, s := range sums {
		if s.Method == "uncoordinated" && s.Shape != "memhog-8" {
			labBad += s.Checked - s.Consistent
			labRuns += s.Checked
		}
	}
	if labRuns == 0 {
		return nil
	}
	labRate := float64(labBad) / float64(labRuns)
	best, bestDiff := *cal, math.Inf(1)
	var tried []string
	for _, d := range StartDelays {
		c := *cal
		if !fitDumps(r, &c, d) {
			continue
		}
		bad, runs := 0, 0
		for _, s := range Shapes {
			if s.Kind == "memhog" || !slices.ContainsFunc(sums, func(x Summary) bool { return x.Shape == s.Name && x.Method == "uncoordinated" }) {
				continue
			}
			run, err := runSeeds(ctx, shapeConfig(s, r, c), alg, SimSeeds)
			if err != nil {
				return err
			}
			bad += run.inconsistent
			runs += run.committed
		}
		if runs == 0 {
			continue
		}
		rate := float64(bad) / float64(runs)
		tried = append(tried, fmt.Sprintf("%g ms: %d/%d", d, bad, runs))
		if diff := math.Abs(rate - labRate); diff < bestDiff-1e-9 {
			best, bestDiff = c, diff
		}
	}
	best.How = cal.How
	best.How["dump_start_ms"] = fmt.Sprintf("fitted: the mean start delay whose simulated uncoordinated snapshots of the lab's shapes with traffic are inconsistent as often as the lab's (%d/%d); tried %s", labBad, labRuns, strings.Join(tried, ", "))
	*cal = best
	return nil
}

// DumpFitFactors scale the closed-form fit's dump overhead and time per MB in
// fitDumpsBySim.
var DumpFitFactors = []float64{0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3}

// fitDumpsBySim refines the dump overhead and disk bandwidth of the closed-form fit
// (fitDumps) against the simulator itself: the closed form takes every dump of an
// uncoordinated snapshot to run the whole time beside all the others, but in the
// simulator (as in the lab) the dumps start at random delays and a dump that starts
// late shares the cores and the disk with fewer others, so the simulated dumps come
// out shorter than the fit meant. It picks the overhead x fo and time per MB x fb
// (fo, fb from DumpFitFactors) whose simulated uncoordinated snapshots' median dump
// times are closest to the lab's, least squares of log(sim / lab) over every shape; the
// closed form's values on a tie.
func fitDumpsBySim(ctx context.Context, r Results, sums []Summary, cal *sim.Calibration) error {
	alg, err := registry.Lookup("uncoordinated")
	if err != nil {
		return err
	}
	if cal.DumpOverheadMs <= 0 || cal.DiskMBps <= 0 {
		return nil
	}
	score := func(c sim.Calibration) (float64, error) {
		sse := 0.0
		for _, s := range Shapes {
			i := slices.IndexFunc(sums, func(x Summary) bool { return x.Shape == s.Name && x.Method == "uncoordinated" })
			if i < 0 || !(sums[i].DumpP50 > 0) {
				continue
			}
			run, err := runSeeds(ctx, shapeConfig(s, r, c), alg, SimSeeds)
			if err != nil {
				return 0, err
			}
			if d := Median(run.dump); d > 0 {
				sse += math.Pow(math.Log(d/sums[i].DumpP50), 2)
			}
		}
		return sse, nil
	}
	base, err := score(*cal)
	if err != nil {
		return err
	}
	best, bestErr, bo, bb := *cal, base, 1.0, 1.0
	for _, fo := range DumpFitFactors {
		for _, fb := range DumpFitFactors {
			if fo == 1 && fb == 1 {
				continue
			}
			c := *cal
			c.DumpOverheadMs, c.DiskMBps = cal.DumpOverheadMs*fo, cal.DiskMBps/fb
			e, err := score(c)
			if err != nil {
				return err
			}
			if e < bestErr-1e-9 {
				best, bestErr, bo, bb = c, e, fo, fb
			}
		}
	}
	best.How = cal.How
	best.How["dump_overhead_ms,disk_mbps"] = fmt.Sprintf("least squares over the uncoordinated snapshots: median dump_ms - dump_start_ms = overhead x max(N/cores, 1) + N x median MB / bandwidth (%.0f ms, %.0f MB/s), then refined against the simulator, whose dumps start at random delays and so overlap less than that form assumes: overhead x %g and time per MB x %g make the simulated uncoordinated median dumps closest to the lab's (sum of squared log ratios over the shapes %.2f, %.2f before)",
		cal.DumpOverheadMs, cal.DiskMBps, bo, bb, bestErr, base)
	*cal = best
	return nil
}

// WorkerSlotChoices are the per-node worker limits fitSlots tries (0: no limit).
var WorkerSlotChoices = []int{1, 2, 3, 4, 6, 8, 0}

// fitSlots picks the per-node worker limit (Calibration.WorkerSlots) whose simulated
// dump times come closest to the lab's: the sum over every shape and algorithm of the
// squared log ratio sim / lab of the median dump and of the slowest dump per snapshot
// (the agent times a dump from its call, so a wait for the node's worker counts in
// it; a limit shows as dumps queued one behind the other, the slowest far above the
// median). The smallest sum wins; no limit on a tie.
func fitSlots(ctx context.Context, r Results, sums []Summary, cal *sim.Calibration) error {
	algs, err := simAlgorithms()
	if err != nil {
		return err
	}
	best, bestErr := 0, math.Inf(1)
	var tried []string
	for _, k := range WorkerSlotChoices {
		c := *cal
		c.WorkerSlots = k
		sse, n := 0.0, 0
		for _, s := range Shapes {
			for _, alg := range algs {
				i := slices.IndexFunc(sums, func(x Summary) bool { return x.Shape == s.Name && x.Method == alg.Name() })
				if i < 0 || !(sums[i].DumpP50 > 0) || !(sums[i].DumpMax > 0) {
					continue
				}
				cfg := shapeConfig(s, r, c)
				cfg.WorkerSlots = k // 0 is a value here: no limit
				run, err := runSeeds(ctx, cfg, alg, SimSeeds)
				if err != nil {
					return err
				}
				for _, e := range [][2]float64{{Median(run.dump), sums[i].DumpP50}, {Median(run.dumpMax), sums[i].DumpMax}} {
					if e[0] > 0 {
						sse += math.Pow(math.Log(e[0]/e[1]), 2)
						n++
					}
				}
			}
		}
		if n == 0 {
			return nil
		}
		name := strconv.Itoa(k)
		if k == 0 {
			name = "no limit"
		}
		tried = append(tried, fmt.Sprintf("%s: %.2f", name, sse))
		if sse < bestErr-1e-9 || (k == 0 && sse <= bestErr+1e-9) {
			best, bestErr = k, sse
		}
	}
	cal.WorkerSlots = best
	cal.How["worker_slots"] = fmt.Sprintf("fitted: the per-node limit on concurrent worker actions whose simulated dump times (median and slowest per snapshot, every shape and algorithm, the wait for the worker included) are closest to the lab's, least squares of log(sim / lab); sum per limit tried: %s (0: no limit)", strings.Join(tried, ", "))
	return nil
}

// CheckTable renders the per-shape comparison as markdown (sim-check.md).
func CheckTable(sr *SimResults) string {
	var b strings.Builder
	b.WriteString("| shape | algorithm | snapshot ms lab / sim | error | frozen ms p50 lab / sim | error | inconsistent cuts lab / sim |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	pct := func(v float64) string {
		s := fmt.Sprintf("%+.0f%%", 100*v)
		if math.Abs(v) > 0.25 {
			s = "**" + s + "**"
		}
		return s
	}
	for _, c := range sr.Checks {
		fmt.Fprintf(&b, "| %s | %s | %.0f / %.0f | %s | %.0f / %.0f | %s | %d/%d / %d/%d |\n", c.Shape, c.Algorithm,
			c.LabTotal, c.SimTotal, pct(c.TotalErr()), c.LabFrozen, c.SimFrozen, pct(c.FrozenErr()),
			c.LabInconsistent, c.LabRuns, c.Inconsistent, c.Runs)
	}
	within, n := 0, 0
	var abs []float64
	for _, c := range sr.Checks {
		for _, e := range []float64{c.TotalErr(), c.FrozenErr()} {
			n++
			abs = append(abs, math.Abs(e))
			if math.Abs(e) <= 0.25 {
				within++
			}
		}
	}
	fmt.Fprintf(&b, "\n%d of %d predictions within 25%% of the lab's median (median error %.0f%%).\n", within, n, 100*Median(abs))
	return b.String()
}

// simPlot draws the calibrated simulator's snapshot time per algorithm against the
// container count (lines, up to 10,000) with the lab's medians of the echo stacks
// (points).
func simPlot(r Results, sums []Summary) (*plot.Plot, error) {
	if r.Sim == nil || len(r.Sim.Curves) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "calibrated simulator (lines) vs lab (points): snapshot time, echo stacks"
	p.Legend.Top, p.Legend.Left = true, true
	p.X.Label.Text = "containers (log; above 30: 10 per node, a host each, peers: star neighbours)"
	p.Y.Label.Text = "ms (log)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, ticks125{}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, ticks125{}
	for i, algo := range Algorithms {
		var line, pts plotter.XYs
		for _, s := range r.Sim.Curves {
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
	p.X.Min = math.Min(p.X.Min, 2)
	return p, nil
}

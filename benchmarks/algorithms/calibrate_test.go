package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/sim"
)

func TestLeastSquaresRecoversCoefficients(t *testing.T) {
	var xs [][]float64
	var ys []float64
	for i := range 10 {
		x := []float64{1, float64(i), float64(i * i % 7)}
		xs = append(xs, x)
		ys = append(ys, 3+2*x[1]+0.5*x[2])
	}
	co, ok := leastSquares(xs, ys)
	if !ok {
		t.Fatal("not solved")
	}
	for i, want := range []float64{3, 2, 0.5} {
		if math.Abs(co[i]-want) > 1e-6 {
			t.Fatalf("coefficient %d = %g, want %g", i, co[i], want)
		}
	}
	if _, ok := leastSquares([][]float64{{1, 1}, {2, 2}}, []float64{1, 2}); ok {
		t.Fatal("a singular system was solved")
	}
}

// synthetic is a lab run whose uncoordinated dumps follow overhead 100 ms on 2 cores
// and 1000 MB/s exactly, for the calibration to find again.
func synthetic() Results {
	r := Results{Host: "kernel x, criu 4.2.1, 2 cores", Reps: 1}
	for _, n := range []int{3, 10, 30} {
		for _, mb := range []float64{2, 100} {
			dump := 100*math.Max(float64(n)/2, 1) + float64(n)*mb
			for _, meth := range []string{"uncoordinated", "blocking", "chandy-lamport"} {
				m := Measurement{Shape: "scale-" + string(rune('0'+n%10)), N: n, Method: meth, TotalMS: dump + 300, Bytes: int64(float64(n) * mb * 1e6), Verdict: "consistent"}
				for range n {
					m.Containers = append(m.Containers, ContainerRow{DumpMS: dump, FrozenMS: dump + 20, LockedMS: dump + 100, CommitMS: dump + 250, Bytes: int64(mb * 1e6)})
				}
				r.Measurements = append(r.Measurements, m)
			}
		}
	}
	return r
}

func TestCalibrateFindsTheLabsParameters(t *testing.T) {
	c := Calibrate(synthetic(), NATSLatency{OneWayP50MS: 0.1, OneWayP90MS: 0.15, PublishMS: 0.01, Samples: 10})
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 0.02*want {
			t.Fatalf("%s = %g, want %g (calibration %+v)", name, got, want, c)
		}
	}
	near("cpus_per_host", c.CPUsPerHost, 2)
	near("dump_overhead_ms", c.DumpOverheadMs, 100)
	near("disk_mbps", c.DiskMBps, 1000)
	near("freeze_ms", c.FreezeMs, 10) // chandy-lamport: (frozen - dump) / 2
	near("lock_ms", c.LockMs, 40)     // blocking: (locked - frozen) / 2
	// blocking's lock over the cores' share: 40 ms / max(N / 2, 1) for N = 3, 10, 30
	// (median of 1.5, 5, 15 per container: the 30s dominate).
	near("lock_cpu_ms", c.LockCPUMs, 40/15.0)
	near("client_ms", c.ClientMs, 50) // total - commit
	near("net_delay_ms", c.NetDelayMs, 0.1)
	for _, k := range []string{"lock_ms", "lock_cpu_ms", "freeze_ms", "client_ms", "dump_overhead_ms,disk_mbps"} {
		if c.How[k] == "" {
			t.Fatalf("calibration does not say how %s was obtained: %v", k, c.How)
		}
	}
}

func TestSimCheckAndCalibrationWritten(t *testing.T) {
	r := synthetic()
	sizes := []int{3, 10, 100}
	sr, err := RunSim(context.Background(), r, NATSLatency{OneWayP50MS: 0.1, OneWayP90MS: 0.15, PublishMS: 0.01, Samples: 10}, sizes)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Curves) != len(sizes)*len(Algorithms) {
		t.Fatalf("%d curve points, want %d", len(sr.Curves), len(sizes)*len(Algorithms))
	}
	r.Sim = sr
	dir := t.TempDir()
	var out strings.Builder
	if err := Report(&out, r, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"calibration.json", "sim-check.md", "sim-vs-lab.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s not written (%v)", f, err)
		}
	}
}

// TestFitSlotsFindsTheLimitTheDataWasMadeWith: lab dump times made by the simulator
// itself with a per-node worker limit (or none) are fitted back to that limit.
func TestFitSlotsFindsTheLimitTheDataWasMadeWith(t *testing.T) {
	algs, err := simAlgorithms()
	if err != nil {
		t.Fatal(err)
	}
	for _, slots := range []int{1, 3, 0} {
		base := sim.Calibration{Hosts: 1, CPUsPerHost: 2, DumpOverheadMs: 100, DiskMBps: 1000, How: map[string]string{}}
		var sums []Summary
		for _, s := range Shapes {
			if s.Name != "scale-10" && s.Name != "fan-in" {
				continue
			}
			for _, alg := range algs[:3] { // blocking, chandy-lamport, uncoordinated
				made := base
				made.WorkerSlots = slots
				run, err := runSeeds(context.Background(), shapeConfig(s, Results{}, made), alg, SimSeeds)
				if err != nil {
					t.Fatal(err)
				}
				sums = append(sums, Summary{Shape: s.Name, Method: alg.Name(), N: s.N, DumpP50: Median(run.dump), DumpMax: Median(run.dumpMax)})
			}
		}
		got := base
		if err := fitSlots(context.Background(), Results{}, sums, &got); err != nil {
			t.Fatal(err)
		}
		if got.WorkerSlots != slots {
			t.Fatalf("made with %d slots (0: no limit), fitted %d: %s", slots, got.WorkerSlots, got.How["worker_slots"])
		}
	}
}

// TestFitDumpsBySimFindsTheSimulatorsCosts: lab dump times made by the simulator with
// a disk 1.5 times slower than the closed-form fit's are fitted back to it.
func TestFitDumpsBySimFindsTheSimulatorsCosts(t *testing.T) {
	alg, err := registry.Lookup("uncoordinated")
	if err != nil {
		t.Fatal(err)
	}
	var r Results
	for _, s := range Shapes {
		mib := 2.0
		if s.Kind == "memhog" {
			mib = 128
		}
		m := Measurement{Shape: s.Name, N: s.N, Method: "uncoordinated"}
		for range s.N {
			m.Containers = append(m.Containers, ContainerRow{Bytes: int64(mib * (1 << 20))})
		}
		r.Measurements = append(r.Measurements, m)
	}
	start := 200.0
	fitted := sim.Calibration{Hosts: 1, CPUsPerHost: 2, DumpOverheadMs: 100, DiskMBps: 1200, DumpStartMs: &start, How: map[string]string{}}
	made := fitted
	made.DiskMBps = 1200 / 1.5
	var sums []Summary
	for _, s := range Shapes {
		if s.Name != "scale-10" && s.Name != "fan-in" && s.Name != "memhog-8" {
			continue
		}
		run, err := runSeeds(context.Background(), shapeConfig(s, r, made), alg, SimSeeds)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, Summary{Shape: s.Name, Method: "uncoordinated", N: s.N, DumpP50: Median(run.dump)})
	}
	if err := fitDumpsBySim(context.Background(), r, sums, &fitted); err != nil {
		t.Fatal(err)
	}
	if math.Abs(fitted.DiskMBps-800) > 1 || math.Abs(fitted.DumpOverheadMs-100) > 0.01 {
		t.Fatalf("fitted %.1f ms overhead, %.1f MB/s; the data was made with 100 ms, 800 MB/s (%s)",
			fitted.DumpOverheadMs, fitted.DiskMBps, fitted.How["dump_overhead_ms,disk_mbps"])
	}
}

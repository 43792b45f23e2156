package sim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/cut"
)

// labLike is the lab's model: 3 nodes on one 2-core host, dumps that seize their
// container after a random start delay, full-mesh traffic.
func labLike(n int) Config {
	cfg := DefaultConfig()
	cfg.Containers, cfg.Nodes, cfg.Hosts, cfg.CPUsPerHost = n, 3, 1, 2
	cfg.Graph, cfg.IdleFraction, cfg.TrafficBytesPerMs = AllToAll, 0, 2
	cfg.MemMinMiB, cfg.MemMaxMiB = 2, 2
	cfg.DumpOverheadMs, cfg.DumpStartMs = 130, 200
	return cfg
}

// TestIndependentDumpsLeaveOrphans: when dumps seize their containers at independent
// times (a start delay), uncoordinated's cut has orphans in most runs (as in the lab:
// 13 of 21), while the coordinated algorithms stay consistent under the same model.
func TestIndependentDumpsLeaveOrphans(t *testing.T) {
	bad := 0
	const seeds = 10
	for seed := uint64(1); seed <= seeds; seed++ {
		cfg := labLike(10)
		cfg.Seed = seed
		rep, err := Run(cfg, byName(t, "uncoordinated"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict == nil {
			t.Fatalf("seed %d: uncoordinated did not commit:\n%s", seed, rep)
		}
		if !rep.Verdict.Consistent() {
			bad++
			orphans := 0
			for _, v := range rep.Verdict.Violations {
				if v.Violation == cut.Orphan {
					orphans++
				}
			}
			if orphans == 0 {
				t.Fatalf("seed %d: inconsistent without an orphan (a receiver that recorded bytes its sender sent after its own dump):\n%s", seed, rep)
			}
		}
		for _, name := range []string{"blocking", "chandy-lamport", "minimal"} {
			rep, err := Run(cfg, byName(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Violations) > 0 || rep.Verdict == nil || !rep.Verdict.Consistent() {
				t.Fatalf("seed %d: %s under the lab's model:\n%s", seed, name, rep)
			}
		}
	}
	if bad < seeds/3 {
		t.Fatalf("only %d of %d uncoordinated cuts inconsistent with independent dump starts; want most", bad, seeds)
	}
	// Without the start delay the dumps overlap (CRIU's lock) and nothing is orphaned.
	cfg := labLike(10)
	cfg.DumpStartMs = 0
	rep, err := Run(cfg, byName(t, "uncoordinated"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict == nil || !rep.Verdict.Consistent() {
		t.Fatalf("simultaneous dumps: want a consistent cut:\n%s", rep)
	}
}

// TestSharedCPUsSlowDumps: N dumps on a host with C cores take about N x overhead / C.
func TestSharedCPUsSlowDumps(t *testing.T) {
	cfg := labLike(30)
	cfg.DumpStartMs, cfg.MemMinMiB, cfg.MemMaxMiB = 0, 0.001, 0.001
	rep, err := Run(cfg, byName(t, "uncoordinated"))
	if err != nil {
		t.Fatal(err)
	}
	want := 30 * cfg.DumpOverheadMs / 2
	if got := rep.DumpTime.P50; got < 0.9*want || got > 1.1*want {
		t.Fatalf("dump time p50 = %.0f ms, want about %.0f (30 dumps x %.0f ms on 2 cores)", got, want, cfg.DumpOverheadMs)
	}
	cfg.CPUsPerHost = 0 // not modelled: each dump costs its overhead
	rep, err = Run(cfg, byName(t, "uncoordinated"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.DumpTime.P50; got > 1.1*cfg.DumpOverheadMs {
		t.Fatalf("without CPU sharing: dump time p50 = %.0f ms, want about %.0f", got, cfg.DumpOverheadMs)
	}
}

// TestLocksShareTheCPUs: with LockCPUMs, N containers locking at once on a host with C
// cores wait about N x LockCPUMs / C for each lock (blocking locks every container at
// once before the commit; the unlocks come after it); without it a lock costs LockMs
// whatever the load.
func TestLocksShareTheCPUs(t *testing.T) {
	latency := func(cfg Config) float64 {
		t.Helper()
		rep, err := Run(cfg, byName(t, "blocking"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict == nil {
			t.Fatalf("blocking did not commit:\n%s", rep)
		}
		return rep.LatencyMs
	}
	cfg := labLike(30)
	cfg.DumpStartMs, cfg.LockMs = 0, 1
	fixed := latency(cfg)
	cfg.LockCPUMs = 5
	shared := latency(cfg)
	want := 30*cfg.LockCPUMs/2 - cfg.LockMs // 30 locks on 2 cores
	if got := shared - fixed; got < 0.7*want || got > 1.3*want {
		t.Fatalf("30 containers, lock CPU %.0f ms on 2 cores: snapshot %.0f ms vs %.0f with a fixed %.0f ms lock: +%.0f, want about +%.0f",
			cfg.LockCPUMs, shared, fixed, cfg.LockMs, got, want)
	}
}

func TestCalibrationAppliesAndLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calibration.json")
	if err := os.WriteFile(path, []byte(`{"hosts":1,"cpus_per_host":2,"disk_mbps":900,"dump_overhead_ms":120,"dump_start_ms":150,"lock_ms":40,"lock_cpu_ms":6,"client_ms":30}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCalibration(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	c.Apply(&cfg)
	if cfg.Hosts != 1 || cfg.CPUsPerHost != 2 || cfg.DiskMBps != 900 || cfg.DumpOverheadMs != 120 ||
		cfg.DumpStartMs != 150 || cfg.LockMs != 40 || cfg.LockCPUMs != 6 || cfg.ClientMs != 30 || cfg.FreezeMs != DefaultConfig().FreezeMs {
		t.Fatalf("applied calibration: %+v", cfg)
	}
	if _, err := LoadCalibration(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing calibration file loaded")
	}
}

func byName(t *testing.T, name string) algorithms.Algorithm {
	t.Helper()
	for _, a := range realAlgorithms() {
		if a.Name() == name {
			return a
		}
	}
	t.Fatalf("no algorithm %q", name)
	return nil
}

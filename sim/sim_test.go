package sim

import (
	"reflect"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/blocking"
)

func small() Config {
	cfg := DefaultConfig()
	cfg.Containers, cfg.Nodes = 24, 6
	return cfg
}

func TestDeterministic(t *testing.T) {
	for _, alg := range realAlgorithms() {
		for _, g := range Graphs {
			t.Run(alg.Name()+"/"+string(g), func(t *testing.T) { testDeterministic(t, alg, g) })
		}
	}
}

func testDeterministic(t *testing.T, alg algorithms.Algorithm, g Graph) {
	cfg := small()
	cfg.Graph = g
	cfg.Seed = 7
	cfg.Faults = Faults{Loss: 0.05, Dup: 0.05, WorkerCrashes: 1}
	a, err := RunAll(cfg, alg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunAll(cfg, alg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different reports:\n%s\n---\n%s", a[len(a)-1].String(), b[len(b)-1].String())
	}
	cfg.Seed = 8
	c, err := RunAll(cfg, alg)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 7 and 8 gave identical reports: the seed is not used")
	}
}

func TestBlockingCommitsConsistent(t *testing.T) {
	rep, err := Run(small(), blocking.Algorithm())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "committed" || len(rep.Violations) > 0 || rep.Verdict == nil || !rep.Verdict.Consistent() {
		t.Fatalf("want a committed consistent snapshot with no violations:\n%s", rep)
	}
	if rep.Downtime.P50 <= 0 || rep.LatencyMs < rep.Downtime.P50 {
		t.Fatalf("blocking freezes every container for most of the snapshot: downtime %+v latency %.1f", rep.Downtime, rep.LatencyMs)
	}
	if !strings.Contains(rep.BenchLine(), "consistent=true") {
		t.Fatalf("bench line %q", rep.BenchLine())
	}
}

// TestEveryAlgorithmCommitsWithoutFaults: with no faults every algorithm commits, every
// container is recorded, and the algorithms that promise a consistent cut deliver one.
func TestEveryAlgorithmCommitsWithoutFaults(t *testing.T) {
	for _, alg := range realAlgorithms() {
		for _, g := range Graphs {
			t.Run(alg.Name()+"/"+string(g), func(t *testing.T) {
				cfg := small()
				cfg.Graph = g
				rep, err := Run(cfg, alg)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Outcome != "committed" || len(rep.Violations) > 0 {
					t.Fatalf("want committed with no violations:\n%s", rep)
				}
				if alg.Guarantees().ConsistentCut && !rep.Verdict.Consistent() {
					t.Fatalf("promised a consistent cut:\n%s", rep)
				}
				if rep.Dumped+rep.Reused != cfg.Containers {
					t.Fatalf("dumped %d + reused %d != %d containers", rep.Dumped, rep.Reused, cfg.Containers)
				}
			})
		}
	}
}

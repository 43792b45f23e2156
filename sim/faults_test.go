package sim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
)

// faultSets are the fault mixes every algorithm must survive with its invariants intact.
var faultSets = []string{
	"loss=0.05,dup=0.05",
	"worker-crash=1",
	"worker-crash=2,loss=0.02",
	"partition=1,partition-ms=2000",
	"partition=1,partition-ms=90000",
	"coordinator-crash=1",
	"coordinator-crash=1,worker-crash=1,loss=0.05,dup=0.05,partition=1",
}

// checkInvariants runs alg under every fault set and seed and fails on any violation.
func checkInvariants(t *testing.T, alg algorithms.Algorithm, seeds int) {
	for _, fs := range faultSets {
		f, err := ParseFaults(fs)
		if err != nil {
			t.Fatal(err)
		}
		effect := 0 // runs where the faults visibly did something
		for _, g := range Graphs {
			for seed := 1; seed <= seeds; seed++ {
				name := fmt.Sprintf("%s/%s/seed%d", fs, g, seed)
				t.Run(name, func(t *testing.T) {
					cfg := small()
					cfg.Graph, cfg.Seed, cfg.Faults = g, uint64(seed), f
					cfg.TimeoutTicks, cfg.WatchdogGraceTicks = 100, 30 // keep simulated time short
					rep, err := Run(cfg, alg)
					if err != nil {
						t.Fatal(err)
					}
					if rep.Dropped > 0 || rep.Outcome != "committed" {
						effect++
					}
					if len(rep.Violations) > 0 {
						t.Fatalf("invariants violated:\n%s", rep)
					}
					if rep.Outcome == "committed" && alg.Guarantees().ConsistentCut && !rep.Verdict.Consistent() {
						t.Fatalf("committed inconsistent cut:\n%s", strings.Join(rep.Verdict.Lines()[:3], "\n"))
					}
				})
			}
		}
		if effect == 0 {
			t.Errorf("fault set %q never dropped a message nor stopped a commit: the faults were not injected", fs)
		}
	}
}

func TestInvariantsUnderFaults(t *testing.T) {
	for _, a := range realAlgorithms() {
		t.Run(a.Name(), func(t *testing.T) { checkInvariants(t, a, 3) })
	}
}

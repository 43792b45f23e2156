package sim

import (
	"testing"
)

// FuzzInvariants runs every algorithm on a fuzzed schedule (seed: memory sizes, traffic,
// message delays and order, fault times) and fault set, and asserts the invariants:
// one decision, nothing left locked or frozen, and a consistent cut for every committed
// snapshot of an algorithm that promises one.
//
//	go test ./sim -run '^$' -fuzz FuzzInvariants -fuzztime 60s
func FuzzInvariants(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint8(0), uint8(10), uint8(0))
	f.Add(uint64(2), uint8(1), uint8(5), uint8(12), uint8(1))
	f.Add(uint64(3), uint8(2), uint8(20), uint8(30), uint8(2))
	f.Add(uint64(4), uint8(3), uint8(0), uint8(7), uint8(7))
	f.Fuzz(func(t *testing.T, seed uint64, graph, lossPct, containers, faultBits uint8) {
		cfg := small()
		cfg.Seed = seed
		cfg.Graph = Graphs[int(graph)%len(Graphs)]
		cfg.Containers = 3 + int(containers)%30
		cfg.Nodes = 1 + int(containers)%5
		cfg.TimeoutTicks, cfg.WatchdogGraceTicks = 60, 20
		cfg.Faults.Loss = float64(lossPct%50) / 100
		cfg.Faults.Dup = float64(lossPct%30) / 100
		if faultBits&1 != 0 {
			cfg.Faults.WorkerCrashes = 1
		}
		if faultBits&2 != 0 {
			cfg.Faults.Partitions = 1
		}
		if faultBits&4 != 0 {
			cfg.Faults.CoordinatorCrash = true
		}
		for _, alg := range realAlgorithms() {
			rep, err := Run(cfg, alg)
			if err != nil {
				t.Fatalf("%s: %v", alg.Name(), err)
			}
			if len(rep.Violations) > 0 {
				t.Fatalf("%s: invariants violated:\n%s", alg.Name(), rep)
			}
		}
	})
}

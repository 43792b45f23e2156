package sim

import "testing"

// BenchmarkRun10k runs every algorithm at the scale target (10,000 containers on 1,000
// nodes, all-to-all, two rounds). benchmarks/sim/run.sh measures the same through the
// CLI with wall time and peak memory.
//
//	go test ./sim -run '^$' -bench Run10k -benchtime 1x
func BenchmarkRun10k(b *testing.B) {
	for _, alg := range realAlgorithms() {
		b.Run(alg.Name(), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Containers, cfg.Nodes, cfg.Graph = 10000, 1000, AllToAll
			for i := 0; i < b.N; i++ {
				rep, err := Run(cfg, alg)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(rep.LatencyMs, "sim-latency-ms")
			}
		})
	}
}

// Command controlplane measures one snapshot round of the control plane at scale: a
// coordinator sends a marker (protocol.TypeMarker, the real codec) to each of W
// simulated workers on its node subject, and every worker answers with a done
// (protocol.TypeDone) on the coordinator's subject; the round ends when the last answer
// arrived. The workers are goroutines of this process, each with its own real NATS
// connection (controlplane/natsbus) to a real NATS server embedded in the process on
// 127.0.0.1. The same round with a single worker is the baseline that the BENCH line's
// ratio names (how the round grows from 1 to W workers); the target is the other.
//
//	go run ./benchmarks/controlplane                     1,000 workers, 200 rounds
//	go run ./benchmarks/controlplane --short             1,000 workers, 20 rounds (CI)
//
// Results: benchmarks/controlplane/RESULTS.md. The target (recorded, not
// asserted): p50 < 100 ms, p99 < 300 ms at 1,000 workers.
package main

// Command algorithms compares swarmckpt's checkpoint algorithms (blocking,
// chandy-lamport, uncoordinated, minimal) on real stacks of a lab, against the ways a
// user checkpoints a stack without swarmckpt: a sequential and a parallel script of
// `docker checkpoint create`, raw `runc checkpoint` in parallel (the data-plane floor)
// and Podman's `podman container checkpoint --export --tcp-established`.
//
// For every stack shape (bank 5 and 15 holders, mixed: a 1 GiB memhog and 7 holders,
// fan-in: an echo server and 20 clients, scale: 3, 10 and 30 containers) it deploys the
// stack once and runs --reps repetitions; within each repetition every method runs once,
// the order rotated from one repetition to the next (interleaved; Podman's containers run
// on the host beside the lab stack, paused while the others are measured, and the lab
// stack is paused during Podman's turn). Each measurement
// records per container the frozen time, the network-locked time, the dump time, the
// time until the snapshot committed, the image bytes, what the application saw in the
// snapshot's window (bank transfer latency p50/p99/max and the longest stall, echo
// reply round trips and the longest gap between replies, from the workloads' GET
// /window) and the cut checker's verdict.
//
// It writes every raw measurement (results.csv, results.json), the plots (SVG and PNG,
// gonum.org/v1/plot), calibrates the simulator (package sim) from the measurements
// and a NATS latency measured on an embedded server (a --replot reuses the run's;
// calibration.json, read by `swarmckpt sim --calibration`), compares the calibrated simulator with every shape
// (sim-check.md, BENCH simcheck lines) and draws its curves up to 10,000 containers
// with the lab's points (sim-vs-lab.svg), and prints BENCH lines naming the baseline
// and the ratio:
//
//	BENCH stack shape=mixed algorithm=chandy-lamport reps=3 total_ms_p50=.. frozen_ms_p50=.. small_frozen_ms_p50=.. big_dump_ms=.. stall_ms_max=.. vs_docker_sequential=..x vs_runc_parallel=..x
//
// The idle shape (5 bank holders and 3 idle memhogs) is measured apart (idle.go): only
// the algorithms, each taking two snapshots in a row, so that minimal's second one
// reuses the idle containers' images; it writes idle.json and idle.md (not part of
// results.json, the plots or the calibration) and BENCH idle lines with the bytes and
// time minimal saved and the ratios to the others' second snapshots.
//
// Usage (make bench-algorithms runs it through run.sh, which brings up the lab):
//
//	go run ./benchmarks/algorithms --swarmckpt bin/swarmckpt --lab NAME --images DIR [--reps 3] [--shapes bank-5,mixed] [--quick] [--out DIR]
//	go run ./benchmarks/algorithms --replot DIR/results.json --out DIR
package main

// Package window keeps a workload's recent traffic events (a reply or an ack arriving,
// with the latency it measured) in a bounded ring and answers, for a time window, what
// the application saw in it: how many events, their latency p50/p99/max, and the
// longest stall (the longest silence between two consecutive events that overlaps the
// window). The algorithm benchmark (benchmarks/algorithms) asks for the window of a
// snapshot through the workloads' GET /window?from=&to= endpoints.
package window

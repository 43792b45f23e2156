// Command counter is the simplest stateful workload: an in-memory counter incremented
// every --interval. It logs its value on stdout each tick and serves it over HTTP.
//
//	counter [--interval 100ms] [--listen :8080] [--start N]
//	counter get URL...            # probe helper for scratch images
//
// Endpoints: GET /value -> "<n>\n"; GET /info -> JSON {value, instance, interval_ms,
// uptime_ms}; GET /healthz -> 200 "ok" while the ticker runs.
//
// A process restored from a checkpoint keeps counting from the checkpointed value and
// keeps its instance id; a restarted one starts again at --start with a new instance id.
package main

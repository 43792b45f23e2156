// Package metrics defines swarmckpt's Prometheus metrics and serves them over HTTP.
//
// Coordinator (NewCoordinator) holds the snapshot metrics of a coordinator: durations
// by algorithm and phase, each container's frozen and dump time, image bytes, and
// snapshot outcomes and failures by reason. Worker (NewWorker) holds a worker's: the
// duration and failures of each API operation, the time containers stayed frozen,
// and the bytes of the image sets it dumped. Agent (NewAgent) holds a node agent's:
// its container actions and node operations by op and result, and the holds it took
// (how many, how many now, how long each lasted). Each registers on a registry its
// caller passes (never the global default one) and is nil-safe: a nil *Coordinator,
// *Worker or *Agent records nothing, so code without metrics needs no branches.
//
// Serve runs the /metrics endpoint of a registry on an address of its own, apart from
// every other API (it carries no secrets and asks for no credentials).
package metrics

// Package sim is a deterministic discrete-event simulator that drives the real
// checkpoint algorithms (package algorithms and its subpackages) at a scale this machine
// cannot host with real containers: 10,000 containers on 1,000 nodes.
//
// Everything is seeded (Config.Seed) and there is no wall clock: one run is a pure
// function of its Config, so the same seed gives the same Report. Simulated time is in
// microseconds; events live in a binary heap of small value structs ordered by time,
// then insertion order.
//
// # Models
//
//   - Containers have a memory size (log-uniform between MemMinMiB and MemMaxMiB, or
//     MemMiB) and run on node i mod Nodes; node n runs on host n mod Hosts (by default
//     every node is its own host). A dump of a running container first waits a random
//     start delay (DumpStartMs) until CRIU seizes it, and records it then; it costs
//     DumpOverheadMs (CPU time shared by the host's dumps on CPUsPerHost cores, when
//     set) plus writing the memory to the host's disk, whose bandwidth is shared equally
//     by the dumps running on it at the same time (processor sharing), so dump time
//     grows with the host's load. A Calibration (calibration.json, written by the
//     algorithm benchmark from a lab run) sets these costs to measured values.
//   - A node's worker runs at most WorkerSlots container actions (lock, unlock, freeze,
//     thaw, dump) at once; the others wait in arrival order, and the wait counts in the
//     action's time, as the agent times it (default: no limit; the lab's fit found none).
//   - Application traffic flows along a communication graph (ring, all-to-all,
//     client/server tiers, pipeline) as a fluid: each direction of a connection writes
//     TrafficBytesPerMs while its sender runs, up to SendBufferBytes unacknowledged
//     while the path is locked; bytes arrive after DataDelayMs while both ends are
//     unlocked and not partitioned. Counters are advanced lazily, only when something
//     about a connection changes, so traffic costs no events.
//   - The snapshot request names each container's peers: its graph neighbours, or with
//     AllPeers every other container, as the coordinator does (it does not know who
//     talks to whom); locks, markers and unlocks follow the peers, traffic the graph.
//   - Control messages (protocol.Envelope from the algorithms) take NetDelayMs plus
//     jitter (so they can be reordered), a tenth of it within a node.
//   - Faults in the measured round: worker crash (the node's agent dies with its
//     container roles and running actions; it restarts with recovering roles), message
//     loss and duplication, partitions (nodes cut from the coordinator and from the other
//     nodes, for control messages and application bytes), coordinator crash (recovered
//     from its last persisted record).
//
// # Driving the algorithms
//
// Every container role and the coordinator role run as in the real processes: Step and
// Tick (every TickMs), then the Ready's actions one after the other, each completed (in
// simulated time) before the next, each container action acknowledged with
// Step(algorithms.Done(...)) carrying the container's live connection counters; then
// the Ready's messages; then Advance. Container roles that implement
// algorithms.TickSkipper (all of this repository's) are ticked only on the tick their
// watchdog fires and brought up to date with SkipTicks before each Step, which gives
// the same run as ticking every role every time (TestLazyTicksChangeNothing).
//
// # What a run reports
//
// Per round (Report): snapshot latency, compute downtime per container (p50/p99/max),
// connection hold time, control messages, bytes dumped, the cut checker's verdict (the
// cut package, fed with what each container's images would hold), and the invariants:
// exactly one decision per snapshot, nothing left locked or frozen once it ends, and a
// consistent cut for every committed snapshot of an algorithm that promises one.
package sim

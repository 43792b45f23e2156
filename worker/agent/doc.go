// Package agent is the node agent, the node side of the control plane next to the
// worker (package worker, the data plane): it runs, for each container of its node
// taking part in a snapshot, the container role of the snapshot's algorithm
// (algorithms.Machine), feeds it the protocol messages arriving on the node's subject,
// executes its container actions through the worker's roles (worker.Roles: Holder for
// lock, freeze, thaw, unlock and stop, Dumper for the dump) and sends its messages to
// the coordinator and to peer containers' nodes. It serves the node operations of the
// wire contract (protocol/node: plan, send, restore, drop, verify, ...) by calling the
// worker role each one needs; exec.go says what a Target or a request means to the
// worker. Run as 'swarmckpt agent'.
//
// Before a snapshot starts the coordinator sends each involved node a Plan
// (request/reply on node.PlanSubject): which containers of the snapshot run where,
// with their addresses, so that peer locks and markers can be routed. A node that does
// not answer has no live agent, and the snapshot is refused before anything is
// locked. The agent first asks the worker (Dumper.CheckDump) about each of its
// containers and refuses the plan if one cannot be dumped there (e.g. a process of
// another user while the worker lacks CAP_SYS_RESOURCE): refused before anything is
// locked, too.
//
// After a successful dump the agent puts the container's image set (files with sha256,
// durable) and its freeze and dump times into the dump's result (DumpStats); the
// container role passes them on in its dump-done, so the coordinator gets the image set
// with the message that says the container is recorded, and commits only when it holds
// every container's set.
//
// A release (thaw, unlock) that fails for a reason other than the container being gone
// is repeated on the container's goroutine until it succeeds, and no new lock or freeze
// of the container is taken before it succeeded (release.go): a container role releases
// once, and its snapshot may have ended by then.
//
// Event loop (one goroutine per agent):
//
//	inbox (plan, protocol message, action result) ──► Step ──► Ready
//	ticker (TickPeriod) ───────────────────────────► Tick ─┘     │
//	  actions executed in order through the worker's roles, results Step'ped back
//	  then messages published, then Advance
package agent

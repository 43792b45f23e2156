// Package worker is the data plane of one Docker node: its container primitives
// (Lock/Unlock, Freeze/Thaw, Dump, Restore, image transfer) behind small ctx-first role
// interfaces (service.go: Holder, Dumper, Sets, Restorer, Tasks, Inspector; drain.go: Drainer;
// xlate.go: Translations; the
// optional ActivityCounter of activity.go), each
// implemented by the Worker, its HTTP Client and the in-memory Fake, with one
// conformance suite (workertest). The node side of the control plane is the agent next
// to it (worker/agent, 'swarmckpt agent'), which calls these roles over the worker's
// local HTTP API.
//
// Every Lock and Freeze carries a deadline. The hold is journaled before the primitive
// runs and a detached watchdog process thaws and unlocks the container when the deadline
// passes, even if this worker was killed with -9 (see package watchdog); a restarted
// worker reconciles the journal at once.
//
// Image sets live under the node's Docker data-root, <data-root>/swarmckpt/sets/<set ID>,
// so that a restore renames them into the runtime wrapper's restore area without a copy.
// Transfer between workers streams a tar of the set over HTTP (loopback in the lab); the
// receiver hashes each file as it writes it and accepts the set only when every sha256
// matches the manifest. DumpInto is the cold migration without a copy on the source:
// CRIU sends the memory pages straight to a one-shot page server of the target worker,
// which hashes them as they arrive (pages_linux.go). With Config.Token, every request
// to the endpoint must carry the cluster's worker token, and workers send it to each
// other (auth.go).
//
// The implementations it composes, each with a real and a fake implementation and one
// conformance suite: container.Inspector, netlock.Locker, freezer.Freezer, dump.Dumper,
// restore.Restorer.
package worker

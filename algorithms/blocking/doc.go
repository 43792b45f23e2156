// Package blocking is the simplest checkpoint algorithm: stop the world.
//
// Rules: the coordinator sends Lock{All, Freeze} to every container; once every
// container acknowledged, it sends Dump{LeaveRunning}; once every dump is done it
// commits, and the Commit thaws and unlocks every container. Any failure or the timeout
// aborts, and the Abort releases every container.
//
//	idle ─request─► locking ─all lock-done─► dumping ─all dump-done─► commit ─► idle
//	                   │ failed | timeout          │ failed | timeout
//	                   └──────────► abort ◄────────┘
//
// Guarantee: a consistent cut. Every connection is locked at both ends before any
// container is recorded, so no byte sent after a recording can be received before the
// other end's recording; bytes in flight stay in the sender's socket queue, which CRIU
// saves. Every container is frozen from its lock until the commit: downtime is about
// max(dump) plus three round trips.
//
// The container role is participant.Machine.
package blocking

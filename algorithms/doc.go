// Package algorithms defines the one interface every checkpoint algorithm implements, in
// the style of etcd raft: a pure state machine fed with Step (messages) and Tick (logical
// time), whose outputs are collected with Ready and acknowledged with Advance. No
// goroutines, clocks, randomness or I/O: the same code runs in the coordinator and
// workers (NATS, Docker, CRIU), in the discrete-event simulator and in unit tests.
// Subpackages: blocking, chandylamport, uncoordinated, minimal (one per algorithm),
// participant (the container role shared by blocking, minimal and uncoordinated),
// registry (lookup by name) and algotest (driver, invariants, conformance suite).
//
// # Participant model
//
// A snapshot covers a set of containers (protocol.Container): each runs on a node (a
// worker) and has peers, the containers of the set it has TCP connections with; each
// connection is two channels (a->b, b->a). Each algorithm has two roles behind Machine:
//
//   - the coordinator role: one per stack, long-lived, at most one snapshot at a time
//     (a second request gets *BusyError). It receives protocol.TypeSnapshotRequest,
//     sends commands (lock, dump, marker, commit, abort) to container roles, persists its
//     state (ActPersist) and decides (ActCommit / ActAbort). Its own process steps in
//     the outcome of ActCommit (TypeCommitDone: commit sent, or the snapshot aborted
//     with the failure) and abort requests (TypeAbortRequest: user, lost stack lock,
//     node gone); every snapshot ends committed or aborted exactly once.
//   - the container role: one per container, run by the worker of the container's node.
//     It turns commands into container actions (ActLock, ActFreeze, ActDump, ActThaw,
//     ActUnlock), which the worker executes and acknowledges with Step(Done(...)), and
//     reports results (lock-done, dump-done, done, failed). With Chandy-Lamport it also
//     sends markers to its peers' container roles. Its watchdog releases the container
//     (thaw + unlock) when the coordinator's deadline (Envelope.Deadline.Ticks) passes
//     without a decision, so no container stays held because someone died. It persists
//     the epoch it joins (ActPersist with Container set, a ContainerRecord) before any
//     lock; rebuilt after a worker restart (ContainerConfig{Recovering, Record}) it
//     releases the container and refuses that epoch, whose locks vanished.
//
// Epoch numbers snapshots of a stack (strictly increasing); container roles drop
// messages of older epochs and release what an older epoch still holds when a newer one
// starts.
//
// # Coordinator role (all algorithms)
//
//	        request (else *BusyError while active)
//	idle ──────────────────────────────────► active: persist(active), commands
//	 ▲                                         │ results in / phase done
//	 │                                         ▼
//	 │                                    committing: ActCommit (container messages,
//	 │                                         │      timeouts, abort requests ignored)
//	 │                     commit-done ok ◄────┴────► commit-done failed
//	 │                           │                          │
//	 │                           │   failed | timeout | abort-request (while active)
//	 │                           │   | recovered undecided  │
//	 │                           ▼                          ▼
//	 │                    commit to all            ActAbort, abort to all
//	 └───────────────────────────┴──────────────────────────┘
//
// A restarted coordinator (RecoverCoordinator) aborts an undecided snapshot (presumed
// abort) and re-sends the decision of a decided one; container roles ignore duplicates.
//
// # Container role, command-driven (participant: blocking, minimal, uncoordinated)
//
//	idle ──lock──► locking ──acks──► held ──dump──► dumping ──ack──► recorded
//	 ▲                                                                  │
//	 │    commit | abort | release | watchdog | newer epoch (thaw+unlock)
//	 └──────────────────────────────────────────────────────────────────┘
//
// # Container role, Chandy-Lamport
//
//	idle ─coordinator marker─► locking(peers not yet recorded) ─ack─► dumping
//	(peer markers before it are remembered)            freeze, dump, thaw
//	                                                         │ ack
//	                                                         ▼
//	done ◄──all peers recorded, all unlocked── recorded: send markers to peers;
//	 │                                         unlock c<->p when p's marker arrives
//	 └─ commit | abort | watchdog: thaw + unlock all, end
//
// Per-algorithm rules and guarantees are in docs/algorithms.md.
package algorithms

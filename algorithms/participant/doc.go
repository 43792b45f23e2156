// Package participant is the container role shared by the command-driven algorithms
// (blocking, minimal, uncoordinated): it turns the coordinator's commands into container
// actions, reports their results, and releases the container on commit, abort, release,
// a newer epoch, or when its watchdog (the command's Deadline.Ticks) expires.
//
//	idle ──lock──► locking ──all acks──► held ──dump──► dumping ──ack──► recorded
//	 ▲   ──dump (no lock: uncoordinated)──────────────►                     │
//	 │  commit | abort | release | watchdog | newer epoch: thaw + unlock    │
//	 └──────────────────────────────────────────────────────────────────────┘
//
// Once a snapshot ended for the container (decision, release or watchdog) every later
// command of that epoch is ignored, and lock/dump commands are answered with Failed, so
// a late command can never lock or record a container the coordinator gave up on.
// The role persists the epoch it joins (ActPersist) before acting on it; rebuilt from
// that record after a worker restart, it treats that epoch as ended.
package participant

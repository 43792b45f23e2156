// Package watchdog guarantees that no container stays network-locked or frozen past its
// deadline, nor after the worker that locked it died, even when it was killed with -9.
//
// Before the worker locks or freezes a container it writes a hold into the journal, a
// directory (/run/swarmckpt/worker/<node>/holds) with one JSON file per container:
// container ID, init PID, what is held (lock, freeze), the deadline and the owner (the
// worker's PID and process start time). Releasing removes the hold after the container
// is unlocked and thawed. Two things act on it:
//
//   - a detached watchdog process (`swarmckpt worker watchdog --journal DIR`, started by
//     the worker in its own session so it outlives it) watches the journal (inotify,
//     waking at the earliest deadline) and the owners of its holds (a pidfd each, see
//     Exited), and thaws and unlocks the container and removes the hold as soon as its
//     deadline passed or its owner ended;
//   - a restarted worker calls Reconcile, which does the same at once, for the holds
//     of owners that ended (a previous worker process) and for expired holds.
//
// Before acting on a PID the watchdog checks that the process still belongs to the
// container (its cgroup names the container ID), so a reused PID is never touched; an
// owner is alive only while a process of its PID and start time runs.
//
//	hold written ──▶ lock/freeze ──▶ ... ──▶ thaw/unlock ──▶ hold removed
//	     │                                      ▲
//	     ├──── deadline passed (watchdog) ──────┤
//	     └──── owner ended (watchdog, Start) ───┘
package watchdog

// Package watchdog guarantees that no container stays network-locked or frozen past its
// deadline, even when the worker that locked it was killed with -9.
//
// Before the worker locks or freezes a container it writes a hold into the journal, a
// directory (/run/swarmckpt/worker/<node>/holds) with one JSON file per container:
// container ID, init PID, what is held (lock, freeze) and the deadline. Releasing
// removes the hold after the container is unlocked and thawed. Two things act on it:
//
//   - a detached watchdog process (`swarmckpt worker watchdog --journal DIR`, started by
//     the worker in its own session so it outlives it) watches the journal (inotify,
//     waking at the earliest deadline) and, for every hold whose deadline passed, thaws
//     and unlocks the container and removes the hold;
//   - a restarted worker calls Reconcile, which does the same at once for expired holds.
//
// Before acting on a PID the watchdog checks that the process still belongs to the
// container (its cgroup names the container ID), so a reused PID is never touched.
//
//	hold written ──▶ lock/freeze ──▶ ... ──▶ thaw/unlock ──▶ hold removed
//	     │                                      ▲
//	     └──── deadline passed (watchdog) ──────┘
package watchdog

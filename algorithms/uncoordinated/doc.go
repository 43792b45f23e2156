// Package uncoordinated takes independent checkpoints: every container dumps on its own
// (no lock, no freeze beyond CRIU's own), so the set of latest images is in general NOT
// a consistent cut. Consistency is recovered at restore time by RecoveryLine, which
// picks the latest consistent combination of the checkpoints each container has, and
// reports how many checkpoints each container had to roll back (the domino effect).
//
// Rules: the coordinator sends Dump{LeaveRunning} to every container; once every dump
// is done it commits, appending each container's counters to its checkpoint history
// (kept in the coordinator's record, at most HistoryLimit per container). Failure or
// timeout aborts; the history does not change.
//
//	idle ─request─► dumping ─all dump-done─► commit (history += images) ─► idle
//	                   └─ failed | timeout ─► abort ─► idle
//
// Recovery line: start from every container's latest checkpoint; while some channel
// a->b has b's chosen checkpoint recording more bytes received from a than a's chosen
// checkpoint recorded sent to b (an orphan), move b back to its latest checkpoint that
// satisfies the channel (or to its initial state). Indices only decrease, so this ends,
// and the result is the maximum consistent cut: every consistent combination is
// component-wise at or below it.
//
// LineByCheck chooses a line over real evidence instead of counters: a check function
// over a combination (the coordinator's runs the cut checker on the sockets of the
// CRIU images) names the containers to move back; restore --recovery-line uses it.
//
// Guarantees: none for a committed snapshot by itself (Guarantees.ConsistentCut is
// false); RecoveryLine always yields a consistent cut, possibly the initial state.
//
// The container role is participant.Machine.
package uncoordinated

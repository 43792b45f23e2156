// Package algotest tests checkpoint algorithms: an in-memory deterministic Driver that
// runs one coordinator role and one container role per container, executes their Ready
// in the documented order, models application traffic on every connection with byte
// counters, and injects faults (seeded reordering, duplicates, drops, mute containers,
// coordinator and worker crashes); invariant checkers (Check); the conformance suite
// Run that every algorithm package's tests call; data-driven scenario scripts with
// golden transcripts (RunScripts); and a fuzz target body (Fuzz).
//
// Traffic model: for each channel a->b the driver counts bytes written by a's
// application (Sent, only while a is not frozen) and bytes delivered into b's socket
// (Received, only while neither a nor b locks the connection). A recording (dump) of c
// copies c's counters: Sent to each peer, Received from each peer. The cut of a
// snapshot is consistent when, for every channel a->b, b's recorded Received <= a's
// recorded Sent: bytes in flight stay in a's socket send queue (CRIU saves it), bytes
// received after a recorded them as unsent would be orphans.
package algotest

// Package cut proves that a set of per-container checkpoints forms a consistent cut.
//
// Containers are the processes of the distributed snapshot and the TCP connections
// between them are its channels. Each container records, for every connection it holds,
// how many bytes its application wrote into the connection (Sent), how many of those
// the peer acknowledged (Acked), and how many bytes arrived from the peer (Received).
// All three are stream offsets counted from the same origin at both ends of one
// direction of the connection.
//
// For every direction A->B of every connection between two containers of the cut:
//
//	Received_B <= Sent_A    no orphan: B never holds a byte that A has not yet written
//	Acked_A    <= Received_B no loss: a byte A dropped from its send queue as acknowledged
//	                        is in B's recorded state
//
// and both endpoints must be present. Check returns a Report naming every offending
// connection with its counters as evidence; Report.Lines gives one evidence line per
// checked direction for `swarmckpt inspect --verify`.
//
// Two front ends produce the input: callers that know the counters directly (the
// simulator, tests) build a State by hand, and FromImages reads them from real CRIU
// image directories (tcp-stream-<inode>.img and the inet socket entries of files.img,
// decoded with go-criu's crit package). Check itself is pure: no I/O, no clock.
package cut

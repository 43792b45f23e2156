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
// Whether a connection needs both ends depends on its TCP state (Conn.State; table in
// docs/algorithms.md, "TCP states at the cut"). An end whose peer, a container of the
// cut, recorded no end is not a violation when it is a pending connect (SYN_SENT: not a
// channel), when it received the peer's FIN (CLOSE_WAIT, LAST_ACK, CLOSING: the peer
// closed its file), when it is over (CLOSE), or when it is established or half-closed by
// itself (unpaired: the peer closed or had not accepted it, its end was kernel-only and is
// in no image; restore resets the connection). Those ends go to Report.Unchecked with a
// Note. A FIN counts as one byte of its direction. An end of unknown state (a State
// built by hand) needs both ends: a missing one is a MissingEndpoint violation.
//
// Two front ends produce the input: callers that know the counters directly (the
// simulator, tests) build a State by hand, and criuimg.FromImages reads them from real
// CRIU image directories (tcp-stream-<inode>.img and the inet socket entries of
// files.img, decoded with go-criu's crit package) into Sockets, which StateFromSockets
// turns into a State. This package is pure: no I/O, no clock, and no CRIU decoder (the
// simulator imports it and does not link go-criu).
package cut

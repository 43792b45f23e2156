// Package tcpharden makes the TCP sockets of a network namespace dumpable by CRIU: it
// turns off retransmit collapsing (net.ipv4.tcp_retrans_collapse=0) in that namespace.
//
// Why: when a retransmission merges queued segments and the peer's late ACK then covers
// only the first of them, the head of the retransmit queue is partly acknowledged. The
// kernel's repair-mode peek of the send queue (tcp_peek_sndq) copies whole buffers, so
// CRIU reads more bytes than SIOCOUTQ reports and the dump fails with
// "soccr.c: recv failed (104, want 93)" / "libsoccr_save() failed with -6". Network
// locks drop packets, so retransmissions are routine around a checkpoint. Measured on the
// bank stack (5 holders, 3 nodes, snapshot loop): 11 of 50 snapshots failed this way with
// collapsing on, 0 of 80 with it off.
//
// The package has no dependencies beyond x/sys: the OCI runtime wrapper uses it.
package tcpharden

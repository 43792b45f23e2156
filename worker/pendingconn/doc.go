// Package pendingconn fails, at once, the connects a restore brought back pending.
//
// CRIU 4.2 restores a socket dumped in SYN_SENT by calling connect() during the restore
// (libsoccr): its SYN goes out while the restored container is still network-locked and
// is dropped, and the kernel sends it again only after its initial retransmission
// timeout (1 s, then 3 s): the application's connect hangs that long after the stack is
// back (measured: 1.00 s with a plain criu restore; ~1.8 s seen after a migration).
// Nothing can make the kernel re-send a SYN earlier, but a pending connect can be ended:
// once the container is unlocked, Fail takes each such socket from the process holding it
// (pidfd_getfd) and shuts it down, which ends a SYN_SENT socket with ECONNRESET for the
// waiting connect(); the application connects again with the network open. A pending
// connect carried no byte (docs/algorithms.md, "TCP states at the cut"), so failing it
// loses nothing a network could not have refused.
//
// The same holds for a connect the restored application starts before the unlock: its
// SYN is dropped too. So the worker takes SynSent of a restored container right before
// unlocking it (every connect pending then sent its SYN into the lock) and ends those
// with FailInodes right after. Fail names sockets by their ports (local, remote; a
// restore that rewrites addresses keeps ports), for a restore without a lock of ours.
// Only sockets still in SYN_SENT are touched: one that completed meanwhile is left alone.
package pendingconn

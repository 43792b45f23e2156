// Package chandylamport is the Chandy-Lamport snapshot with network locks as the FIFO
// channel: markers travel out of band (NATS), and a connection is held (locked) only
// between its two endpoints' recordings.
//
// Coordinator role: sends a Marker (naming the container's peers) to every container;
// commits once every container reported Done (recorded, and every one of its
// connections open again); aborts on Failed or timeout, and the Abort releases everyone.
//
//	idle ─request─► recording ─all done─► commit ─► idle
//	                    └─ failed | timeout ─► abort ─► idle
//
// Container role (Container):
//
//	idle ─coordinator marker─► locking ─lock ack─► dumping ─dump ack─► recorded ──► done
//	  (peer markers before it    Lock(peers not    Freeze, Dump        send Marker to every
//	   are remembered)           yet recorded)     (leave running),    peer, Unlock(p) for
//	                                               Thaw                each recorded peer p;
//	                                                                   Done when all open
//	any state ─ commit | abort | watchdog ─► thaw + unlock all, end
//
// Rules: on its (first) coordinator marker, c locks only its connections to peers that
// have not recorded yet (it knows p has recorded when p's marker arrived), freezes,
// dumps leaving the container running and thaws at once, then sends a marker to each
// peer. c unlocks c<->p when it has recorded and p's marker has arrived.
//
// Guarantee: a consistent cut. Take a connection c<->p and say c records first. c
// locked c<->p before recording (p had not recorded) and keeps that lock until p's
// marker says p recorded. So no byte c sends after its recording reaches p before p's
// recording (no orphan), and bytes p sent before its recording that c had not received
// when c recorded are still unacknowledged in p's socket send queue, which CRIU saves
// with p (no loss). Compute downtime of c is its own dump; a connection is held from
// the first of its ends' recordings to the second.
//
// A container role persists the epoch it joins (ActPersist) before locking; rebuilt
// after a worker restart with that record, it answers Failed for that epoch, since its
// locks vanished with the restart.
package chandylamport

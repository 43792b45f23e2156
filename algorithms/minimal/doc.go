// Package minimal is a Koo-Toueg style minimal checkpoint: only containers whose
// connections carried bytes since their last checkpoint dump again; the others reuse
// the images of their last checkpoint.
//
// Rules: the coordinator locks every container's network (no freeze) and each
// container answers with its per-connection counters (bytes sent and received, e.g.
// tcp_info). A container is clean when it has a base (an image from an earlier committed
// snapshot) and its counters equal the counters recorded in that image; clean containers
// get Dump{ReuseFrom: base}, the others (dirty) a fresh Dump. Every dump releases its
// container at once (ReleaseAfter). When every dump is done the coordinator commits and
// the dirty containers' new images become their bases. Failure or timeout aborts (the
// bases do not change) and the Abort releases everyone.
//
//	idle ─request─► locking ─all lock-done─► dumping ─all dump-done─► commit ─► idle
//	                (counters)   dirty: Dump        │ bases of dirty := new images
//	                             clean: Dump(reuse) │
//	                   └──── failed | timeout ──────┴─► abort ─► idle
//
// Guarantee: a consistent cut. Every connection is locked at both ends before any
// dump, so a container released after its own dump cannot deliver post-recording bytes
// to an unrecorded one. A clean container c carried no byte since its base image, so
// for every channel c->p, p's received now <= c's sent now = c's sent in the base image,
// and for p->c, c's received in the base image <= p's sent then <= p's sent now. Only
// dirty containers pay a dump; everyone pays one lock round trip.
//
// A real worker does not know which container is at a socket's other end: it reports
// one counter per TCP socket of the container (ConnCounter.Local set, Peer the remote
// address) and the CPU time it used (Peer protocol.CPUTime), an older worker aggregate
// counters (Peer protocol.AllPeers: the bytes of all its interfaces) and the CPU time.
// Such a container is clean when its counters equal its base's one for one: the same
// connections, none of which moved a byte, and no instruction run since its base
// reading.
// The coordinator service continues the role across a stack's snapshots from the
// last committed record (ContinueCoordinator, algorithms.Continuer), so the bases
// survive a coordinator restart (docs/algorithms.md "minimal on a real stack").
//
// The container role is participant.Machine.
package minimal

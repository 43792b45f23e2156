// Package netlock locks a container's network: nftables rules inside the container's own
// network namespace that drop packets to and from every address, or only to and from given
// peer addresses. Dropped (not rejected) packets make TCP retransmit after unlock or
// restore, so the socket queues of locked endpoints are the channel state of a cut.
// Loopback inside the container is never locked.
//
// All rules live in one table, inet swarmckpt_lock, rebuilt atomically from the desired
// State on every change; Unlock removes exactly that table and nothing else (CRIU's own
// CRIU-<pid> tables and Docker's rules are untouched). Lock and Unlock are idempotent.
//
//	            Lock(all)                 Unlock()
//	unlocked ───────────────▶ locked(all) ─────────▶ unlocked
//	    │ Lock(p)                 ▲ Lock(all)
//	    ▼                         │
//	locked(peers) ── Lock(q): peers ∪ {q}; Unlock(p): peers \ {p}, empty ⇒ unlocked
package netlock

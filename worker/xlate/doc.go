// Package xlate translates a moved container's old address to its new one inside the
// network namespaces of the peers that stay where they are (issue 16, docs/restore.md
// "Partial migration"): a task moved in swarm mode gets a new address, and its
// restored sockets are rewritten to it, but a peer that keeps running still has
// sockets to the old one. Stateless rules in the peer's own namespace make the peer
// see the old address while the packets carry the new one:
//
//	output     (route, raw priority): ip daddr OLD -> NEW, notrack
//	prerouting (filter, raw priority): ip saddr NEW -> OLD, notrack
//
// All rules live in one table, inet swarmckpt_xlate, rebuilt atomically from the
// desired rules on every change (maps old->new and new->old per address family);
// removing the last rule removes the table. InUse tells whether a socket of the
// namespace still talks to OLD, so that the worker removes a translation once the
// last connection that used the old address has ended.
//
// The worker's role Translations (worker/xlate.go, xlate_linux.go) keeps them, with a
// poll of InUse that removes each once unused; the node agent serves it as operation
// xlate; the coordinator's drain hold (coordinator/drainaddr.go) calls it for the
// staying tasks of a moved task's stack. migrate --mode swarm does not use it yet
// (docs/restore.md "Partial migration", "Left").
package xlate

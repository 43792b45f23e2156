// Package node is the wire contract between the coordinator and the node agents: every
// NATS subject either side uses (subjects.go: one prefix, one table), one request and
// one reply type per node operation (ops.go), the snapshot plan and heartbeat
// (plan.go), and the error codes that cross the node boundary in both directions
// (errors.go): over NATS in every reply's Status, and over the worker's HTTP API.
//
// Both sides import this package; it imports only protocol (the algorithm messages'
// envelope and bodies, including the ImageSet a dump reports). Nothing here does I/O.
//
// Compatibility rules are protocol's: replies and requests may gain fields, never lose
// or re-type one; the operation list and the error codes and reasons are ONLY
// APPENDED TO.
package node

// Package holdtime says how long a hold (a network lock or a freeze) and the waits
// around it may last, as a function of the work they cover.
//
// A hold's deadline is what the worker's watchdog releases it at when nobody else does
// (the coordinator died, a node was cut off). A constant deadline is wrong both ways: a
// 1 GiB container's dump, or a slow stream, can outlive it, and a small stack stays
// frozen and cut off far too long after a failure. A Budget is the deadline of some
// work: a base (fixed costs: CRIU's start, freezing, the rounds of the protocol), a
// cost per container (each dump or restore on a node runs CRIU once), and the bytes
// moved at a floor rate (the slowest disk or link the work is assumed to see), capped.
// Nodes work in parallel, so a stack's budget is that of its busiest node.
//
// The package is pure: callers measure the work (image sizes of the stack's last
// snapshot, the bytes of a set to restore) and pass it in.
package holdtime

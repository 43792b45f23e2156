// Package nodeloss holds the pure decisions of node-loss recovery (label
// swarmckpt.on-node-loss: restore, docs/policy.md "Node loss"): when a node counts as
// lost, which snapshot a stack that ran on it goes back to, where its containers go
// in, and which containers a node that comes back must remove (its fence).
// Nothing here does I/O or reads a clock: the coordinator (coordinator/nodeloss.go)
// feeds it observations and acts on its answers.
//
// A node's states in the Tracker (one step per observation):
//
//	      every signal down          down for Confirm
//	up ──────────────────> suspect ──────────────────> lost   (BecameLost, once)
//	^                         │                          │
//	└──── a signal is back ───┘                          │ its worker or agent answers
//	^                                                    │ (Returned, once)
//	└────────────────────────────────────────────────────┘
//
// A node is down only when every signal says so: no heartbeat of its agent (NATS),
// no worker member in memberlist, and swarm reports the node down. One signal alone
// (a NATS hiccup, a gossip suspicion, a manager that has not yet missed a swarm
// heartbeat) never makes it lost, and a signal that comes back before Confirm has
// passed resets it (flapping). A node the tracker never saw up (the coordinator took
// over the lead, or started, after the node died) starts in up too, but its first
// "every signal down" counts only once Tracker.Grace has passed since the tracker's
// first observation: until then a live node's heartbeat may simply not have arrived.
package nodeloss

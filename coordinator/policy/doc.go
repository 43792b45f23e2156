// Package policy turns the swarmckpt.* labels of a stack's services (deploy.labels)
// into the stack's effective protection policy, and holds the pure decisions of the
// coordinator's policy reconciler: when a scheduled snapshot is due, and which
// scheduled snapshots retention removes. It touches no network, disk or clock: the
// reconciler (coordinator/reconcile.go) feeds it labels, stored state and the time,
// and executes what it decides. See docs/policy.md.
//
// One stack's schedule, as Due sees it:
//
//	no state / schedule changed ─► Next = first time after now      (wait)
//	now < Next                  ─► wait
//	now >= Next, no run going   ─► run once (however many times were missed),
//	                               Next = first time after now
//	now >= Next, a run going    ─► skip (reported), Next = first time after now
package policy

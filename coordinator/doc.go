// Package coordinator is the swarmckpt coordinator: it resolves a stack to its
// containers (coordinator/stack), runs one instance of the chosen algorithm's
// coordinator role (algorithms/) per snapshot, executes that machine's Ready (persist
// and commit in the Store, messages to the workers over the bus), and serves the CLI
// (coordinator/api).
//
// A snapshot, as the driver runs it:
//
//	resolve stack ─► take stack lock (lease) ─► create manifest (preparing)
//	   ─► send a Plan to every node's agent (a node without a live worker: refused)
//	   ─► Step(snapshot request) ─► loop { Step(worker messages) | Tick | abort request }
//	        dump-done : its image set recorded in the manifest
//	        ActPersist: record into the manifest (state dumping)
//	        ActCommit : every image set present? cut consistent (if the algorithm
//	                    promises it)? commit in one transaction (Store.Commit);
//	                    the outcome is stepped back (commit-done): the role sends
//	                    commit, or aborts with the failure as the reason
//	        ActAbort  : manifest aborted with the reason
//	   ─► decision sent to the containers ─► unlock stack
//
// Aborts come from the algorithm (a container failed, the deadline passed, the commit
// failed) and, stepped in as abort-request messages, from the user (api abort, e.g. the
// CLI's Ctrl-C), from a node leaving the cluster (NodeFailed) and from losing the stack
// lock. A restarted coordinator finds the manifests that are
// neither committed nor aborted and drives the algorithm's RecoverCoordinator on their
// record, which aborts them and releases every container (presumed abort); then it
// releases, rolls back or finishes the restores and migrations its predecessor
// journaled (coordinator/restore: RecoverOperations).
//
// Restore and migrate are served by coordinator/restore (restore.Restores), to which
// the Service is the restore.Host (restores.go).
//
// With Config.Elector set, several coordinators share one store (leader.go): Run
// waits as a standby until it wins the election; only the leader serves the CLI,
// runs that recovery (so a coordinator that starts never touches a live leader's
// snapshots) and the policy reconciler. A standby that takes over recovers what the
// dead leader left; a leader that loses its leadership aborts its snapshots and
// returns store.ErrLeadershipLost.
//
// With Config.Policies set, Run also starts the policy reconciler (reconcile.go): it
// applies the stacks' swarmckpt.* service labels (coordinator/policy) by taking
// scheduled snapshots and removing the ones retention lets go (docs/policy.md).
package coordinator

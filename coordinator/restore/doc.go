// Package restore serves restores and migrations for the coordinator (Restores, to
// which the coordinator is the Host: snapshots, stack locks, live workers, events).
//
// A restore or migration (handlers.go: Restores.Restore, Restores.Migrate), in order:
// pre-flight on the nodes before anything changes (preflight.go), the choice of the
// cut to restore (recoveryline.go), a checkpoint of what runs (putback.go; a
// migration's own snapshot), its containers parked after their dump (park.go), the
// stop (stop.go, standalone.go), the restore, and on failure the checkpoint put back
// (on the original nodes; a swarm-mode restore's or migration's as swarm tasks where
// they ran, restoreswarm.go).
// In both modes each step is journaled in the store before it begins
// (opjournal.go), so that a coordinator started after a crash releases, rolls back or
// finishes it (recoverops.go, by Decide's rule in journal.go).
//
// The restoring itself: exact mode (exact.go AgentRestorer: every image set moved to
// its target node, then restored there as a standalone container on its recorded
// address) and swarm mode (swarm.go SwarmRestore.Run, a sequence of named steps:
// swarm's own replacement tasks restored by the runtime wrapper from sets placed on
// every candidate node, their addresses rewritten). Both, and every other node
// request of the package (pre-flight, verify, standalone listing and removal, the
// stop of parked containers), reach the nodes only through Nodes (nodes.go), small
// roles of the node operations (Checks, Sets, Containers, Placements), implemented
// over the bus by AgentNodes (nodeclient.go: a call fails at once when its agent
// restarts or goes silent, and the idempotent ones are repeated while an agent or
// worker restarts); Config.Nodes replaces it (a fake in tests). Tests run AgentNodes
// against agents with fake executors, killed and restarted in
// coordinator/restorekill_test.go.
package restore

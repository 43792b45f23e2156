// Package restore brings a committed snapshot's containers back, through the node
// agents: exact mode (AgentRestorer: every image set moved to its target node, then
// restored there as a standalone container on its recorded address) and swarm mode
// (SwarmRestore: swarm's own replacement tasks restored by the runtime wrapper from
// sets placed on every candidate node, their addresses rewritten).
//
// It talks to the nodes only through Nodes, a small interface of the node operations
// a restore uses (transfer, restore, placement), which the coordinator implements
// over the bus (coordinator/asknode.go: AgentNodes); tests implement it over fake
// agents the same way. It talks to swarm only through stack.Swarm.
//
// The coordinator decides what to restore and when (coordinator/handlers.go: the
// pre-flight, the checkpoint of what runs, the stop, the putting back on failure);
// this package does the restoring, all or nothing, and the pure planning it needs
// (PlanTargets, PlanSlots, CurrentTasks, BuildAddressMap, ContainerName, SetOf).
package restore

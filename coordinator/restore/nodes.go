package restore

import (
	"context"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
)

// Nodes is what a restore asks of the nodes' agents: the image sets it moves, the
// containers it restores and releases, and (swarm mode) the sets it places for the
// runtime wrapper. AgentNodes (nodeclient.go) implements it over the bus; an error
// says which node failed and why (a node without a live agent: "no live worker
// answers on ...").
type Nodes interface {
	Sets
	Containers
	Placements
}

// Sets moves and deletes image sets between nodes.
type Sets interface {
	// Addr returns a node's transfer endpoint (from its agent's heartbeats).
	Addr(node string) (string, bool)
	// Send streams a set from node from to the worker at req.To (checksums verified on
	// arrival). An error containing "already exists" means the target has it.
	Send(ctx context.Context, from string, req nodeagent.SendRequest) (*nodeagent.OpReply, error)
	// Drop deletes a set on node.
	Drop(ctx context.Context, node, set string) error
}

// Containers restores containers from sets and releases or removes them.
type Containers interface {
	// Restore restores a set on node into a new container (rep.Container, also set
	// when the restore failed after the container was created).
	Restore(ctx context.Context, node string, req nodeagent.RestoreRequest) (*nodeagent.OpReply, error)
	// Unlock lifts the network lock of restored containers (ids or names) on node.
	Unlock(ctx context.Context, node string, containers []string) error
	// Remove force-removes containers (ids or names) on node.
	Remove(ctx context.Context, node string, containers []string) error
}

// Placements leaves sets for the runtime wrapper of swarm's replacement tasks.
type Placements interface {
	// Place puts a set where the wrapper of task SERVICE.SLOT on node finds it.
	Place(ctx context.Context, node string, req nodeagent.PlaceRequest) (*nodeagent.OpReply, error)
	// Unplace takes a placement back (rep.Removed: it was unclaimed; rep.Container:
	// the container that claimed it).
	Unplace(ctx context.Context, node string, req nodeagent.UnplaceRequest) (*nodeagent.OpReply, error)
	// AddressMap gives the placement of SERVICE.SLOT on node its address map.
	AddressMap(ctx context.Context, node string, req nodeagent.AddressMapRequest) error
}

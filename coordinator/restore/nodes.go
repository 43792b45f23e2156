package restore

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Nodes is what a restore asks of the nodes' agents: the checks before it, the image
// sets it moves, the containers it restores, stops and releases, and (swarm mode) the
// sets it places for the runtime wrapper. AgentNodes (nodeclient.go) implements it
// over the bus; an error says which node failed and why (a node without a live
// agent: "no live worker answers on ...", matching node.ErrUnavailable and
// bus.ErrNoResponders). Each call is bounded by its ctx (and AgentNodes.Timeout).
type Nodes interface {
	Checks
	Sets
	Containers
	Placements
	PostCopySources
	PreCopySources
}

// Checks asks nodes what a restore must know before it changes anything.
type Checks interface {
	// Preflight asks node whether it can take a restore's containers and holds the
	// sets it reads (req.Prepare: get ready for it). The node's refusal is in
	// rep.Error, not in the error.
	Preflight(ctx context.Context, nodeName string, req node.PreflightRequest) (*node.PreflightReply, error)
	// Verify re-hashes a set's files on node and reads the sockets of its images.
	Verify(ctx context.Context, nodeName string, req node.VerifyRequest) (*node.VerifyReply, error)
	// Standalone lists the containers restored (exact mode) for stack's services on node.
	Standalone(ctx context.Context, nodeName, stack string) ([]node.Standalone, error)
}

// Sets moves and deletes image sets between nodes.
type Sets interface {
	// Addr returns a node's transfer endpoint (from its agent's heartbeats).
	Addr(nodeName string) (string, bool)
	// Send streams a set from node from to the worker at req.To (checksums verified on
	// arrival). An error matching node.ErrSetExists means the target has it.
	Send(ctx context.Context, from string, req node.SendRequest) (*node.SendReply, error)
	// Drop deletes a set on node.
	Drop(ctx context.Context, nodeName, set string) error
}

// Containers restores containers from sets and releases or removes them.
type Containers interface {
	// Restore restores a set on node into a new container (rep.Container, also set
	// when the restore failed after the container was created).
	Restore(ctx context.Context, nodeName string, req node.RestoreRequest) (*node.RestoreReply, error)
	// Unlock lifts the network lock of restored containers (ids or names) on node.
	Unlock(ctx context.Context, nodeName string, containers []string) error
	// Remove force-removes containers (ids or names) on node.
	Remove(ctx context.Context, nodeName string, containers []string) error
	// StopParked ends the containers node keeps frozen since their dump (req.Resume:
	// releases them: they run on). The reply says, per container, what node found and
	// did (node.StopOutcome; none from an agent of an older version); it comes with
	// the error when the node answered (a container not parked: node.ErrNotParked,
	// never ended).
	StopParked(ctx context.Context, nodeName string, req node.StopRequest) (*node.StopReply, error)
}

// Placements leaves sets for the runtime wrapper of swarm's replacement tasks.
type Placements interface {
	// Place puts a set where the wrapper of task SERVICE.SLOT on node finds it.
	Place(ctx context.Context, nodeName string, req node.PlaceRequest) (*node.PlaceReply, error)
	// Unplace takes a placement back (rep.Removed: it was unclaimed; rep.Container:
	// the container that claimed it).
	Unplace(ctx context.Context, nodeName string, req node.UnplaceRequest) (*node.UnplaceReply, error)
	// AddressMap gives the placement of SERVICE.SLOT on node its address map.
	AddressMap(ctx context.Context, nodeName string, req node.AddressMapRequest) error
}

// PostCopySources drives the source of a post-copy migration (node.Target.PostCopy):
// parked, frozen, serving its pages from a page server of its node.
type PostCopySources interface {
	// Disconnect takes the frozen containers (ids or names) on node off every network
	// they are on, so that their restores elsewhere take their addresses; refused
	// (node.ErrNotFrozen) for one that is not frozen.
	Disconnect(ctx context.Context, nodeName string, containers []string) error
	// WaitLazy waits until the page server of the post-copy dump of set on node served
	// every page: nil then; its error otherwise, node.ErrNotFound when node knows no
	// such dump (its worker restarted), and an error matching node.ErrUnavailable when
	// node's agent is lost meanwhile: each is data loss for that container.
	WaitLazy(ctx context.Context, nodeName, set string) error
	// Reconnect stops the page servers of the post-copy sources of req on node and
	// puts them back on their networks with their addresses and aliases (the rollback
	// of a failed restore); they stay held until released (Containers.StopParked with
	// Resume).
	Reconnect(ctx context.Context, nodeName string, req node.ReconnectRequest) error
}

// PreCopySources drives the source of a pre-copy migration (node.Target.PreCopy)
// before its snapshot: the pre-dumps while it runs.
type PreCopySources interface {
	// PreCopy pre-dumps a running container on node for its set (rounds as the
	// node's policy says) and keeps them there for the set's dump; refused
	// (node.ErrNoSoftDirty) where node's kernel tracks no soft-dirty pages. Nothing is
	// kept on failure.
	PreCopy(ctx context.Context, nodeName string, req node.PreCopyRequest) (*node.PreCopyReply, error)
}

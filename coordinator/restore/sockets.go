package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// AgentSockets asks the node holding c's image set (set) to verify it and read its
// sockets, over b (Sockets through AgentNodes).
func AgentSockets(ctx context.Context, b bus.Transport, timeout time.Duration, set string, c store.Container) ([]cut.Socket, error) {
	return Sockets(ctx, AgentNodes{Bus: b}, timeout, set, c)
}

// AgentSocketsOf is AgentSockets; recheck lets the node accept a set it hashed as it
// wrote it by its files' stamps (node.VerifyRequest.Recheck).
func AgentSocketsOf(ctx context.Context, b bus.Transport, timeout time.Duration, set string, c store.Container, recheck bool) ([]cut.Socket, error) {
	return sockets(ctx, AgentNodes{Bus: b}, timeout, set, c, recheck)
}

// SocketsOf is Sockets through n; recheck lets the node accept a set it hashed as it
// wrote it by its files' stamps (node.VerifyRequest.Recheck).
func SocketsOf(ctx context.Context, n Checks, timeout time.Duration, set string, c store.Container, recheck bool) ([]cut.Socket, error) {
	return sockets(ctx, n, timeout, set, c, recheck)
}

// Sockets asks the node holding c's image set (set) to verify it and read its
// sockets, bounded by timeout.
func Sockets(ctx context.Context, n Checks, timeout time.Duration, set string, c store.Container) ([]cut.Socket, error) {
	return sockets(ctx, n, timeout, set, c, false)
}

func sockets(ctx context.Context, n Checks, timeout time.Duration, set string, c store.Container, recheck bool) ([]cut.Socket, error) {
	nodeName := c.Images.Node
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := n.Verify(cctx, nodeName, node.VerifyRequest{Set: set, Label: c.Key(), Files: c.Images.Files, Recheck: recheck})
	if err != nil {
		if errors.Is(err, bus.ErrNoResponders) {
			return nil, fmt.Errorf("no live worker on node %s, which holds the images (start it, then verify again): %w", nodeName, node.ErrUnavailable)
		}
		if lost := (agentLostError{}); errors.As(err, &lost) {
			// Its agent died (or restarted and was not back in time) while it verified.
			return nil, fmt.Errorf("node %s, which holds the images: %w (start the agent there, or wait until its supervisor has restarted it, then verify again)", nodeName, err)
		}
		return nil, fmt.Errorf("node %s: %w", nodeName, err)
	}
	var socks []cut.Socket
	if err := json.Unmarshal(rep.Sockets, &socks); err != nil {
		return nil, fmt.Errorf("node %s sent sockets that do not decode: %w", nodeName, err)
	}
	for i := range socks {
		socks[i].Container = c.Key() // never trust a label from the wire
	}
	return socks, nil
}

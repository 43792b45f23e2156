package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/cut"
)

// AgentSockets asks the node holding c's image set (set) to verify it and read its
// sockets.
func AgentSockets(ctx context.Context, b bus.Transport, timeout time.Duration, set string, c store.Container) ([]cut.Socket, error) {
	node := c.Images.Node
	req, _ := json.Marshal(nodeagent.VerifyRequest{Set: set, Label: c.Key(), Files: c.Images.Files})
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := b.Request(rctx, nodeagent.VerifySubject(node), req)
	if err != nil {
		if errors.Is(err, bus.ErrNoResponders) {
			return nil, fmt.Errorf("no live worker on node %s, which holds the images (start it, then verify again)", node)
		}
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	var rep nodeagent.OpReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("node %s answered garbage: %w", node, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("node %s: %s", node, rep.Error)
	}
	var socks []cut.Socket
	if err := json.Unmarshal(rep.Sockets, &socks); err != nil {
		return nil, fmt.Errorf("node %s sent sockets that do not decode: %w", node, err)
	}
	for i := range socks {
		socks[i].Container = c.Key() // never trust a label from the wire
	}
	return socks, nil
}

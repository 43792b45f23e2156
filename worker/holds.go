package worker

import (
	"context"
	"net/http"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Held is one container held locked or frozen on a node, and until when (the wire
// contract's type: the agent passes the list on as it is).
type Held = node.Held

// Holds implements Holder.
func (c *Client) Holds(ctx context.Context) ([]Held, error) {
	var out []Held
	err := c.call(ctx, http.MethodGet, "/v1/holds", apiRequest{}, &out)
	return out, err
}

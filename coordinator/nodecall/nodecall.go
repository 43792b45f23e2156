package nodecall

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Ask sends req to a node agent's subject and decodes its reply R, bounded by
// timeout: the transport's error as it is (bus.ErrNoResponders when no agent
// listens), or the agent's own error (with its reply), which matches the contract's
// sentinels (node.ErrNoSuchSet, ...) with errors.Is.
func Ask[R any, P interface {
	*R
	node.Reply
}](ctx context.Context, b bus.Transport, subject string, req any, timeout time.Duration) (*R, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("nodecall: encode the request on %s: %w", subject, err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := b.Request(cctx, subject, data)
	if err != nil {
		return nil, err
	}
	var rep R
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("nodecall: decode the reply on %s: %w", subject, err)
	}
	if err := P(&rep).Err(); err != nil {
		return &rep, err
	}
	return &rep, nil
}

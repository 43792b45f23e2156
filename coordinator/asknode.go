package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
)

// askNode sends req to a node agent's subject and decodes its OpReply, bounded by
// timeout: the transport's error as it is (bus.ErrNoResponders when no agent
// listens), or the agent's own error (with its reply).
func askNode(ctx context.Context, b bus.Transport, subject string, req any, timeout time.Duration) (*nodeagent.OpReply, error) {
	data, _ := json.Marshal(req)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := b.Request(cctx, subject, data)
	if err != nil {
		return nil, err
	}
	var rep nodeagent.OpReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

package workerexec

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

var _ nodeagent.HoldLister = (*Exec)(nil)

// Holds implements nodeagent.HoldLister.
func (e *Exec) Holds(ctx context.Context) ([]node.Held, error) {
	l, ok := e.W.(worker.HoldsService)
	if !ok {
		return nil, fmt.Errorf("workerexec: the worker of node %s cannot list its holds (update it)", e.Info.Node)
	}
	list, err := l.Holds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]node.Held, 0, len(list))
	for _, h := range list {
		out = append(out, node.Held{ContainerID: h.ContainerID, Name: h.Name, Locked: h.Locked, Frozen: h.Frozen,
			Deadline: h.Deadline, OwnerAlive: h.OwnerAlive})
	}
	return out, nil
}

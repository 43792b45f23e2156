package workerexec

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

var _ nodeagent.StandaloneLister = (*Exec)(nil)

// Standalone implements nodeagent.StandaloneLister.
func (e *Exec) Standalone(ctx context.Context, stack string) ([]node.Standalone, error) {
	l, ok := e.W.(worker.StandaloneService)
	if !ok {
		return nil, fmt.Errorf("workerexec: the worker of node %s cannot list restored containers (update it)", e.Info.Node)
	}
	list, err := l.Standalone(ctx, stack)
	if err != nil {
		return nil, err
	}
	out := make([]node.Standalone, 0, len(list))
	for _, c := range list {
		s := node.Standalone{ID: c.ID, Name: c.Name, Image: c.Image, Service: c.Service, Labels: c.Labels, Running: c.Running, State: c.State}
		for _, n := range c.Networks {
			s.Networks = append(s.Networks, node.StandaloneNet{Name: n.Name, IPv4: n.IPv4, IPv6: n.IPv6, Aliases: n.Aliases})
		}
		out = append(out, s)
	}
	return out, nil
}

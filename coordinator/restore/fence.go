package restore

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// StandaloneOn lists the containers restored for stack's services on one node (its
// agent answers): what a fence (coordinator/nodeloss) looks at when a lost node
// comes back.
func (s *Restores) StandaloneOn(ctx context.Context, nodeName, stackName string) ([]node.Standalone, error) {
	cctx, cancel := context.WithTimeout(ctx, standaloneTimeout)
	defer cancel()
	list, err := s.nodes.Standalone(cctx, nodeName, stackName)
	if err != nil {
		return nil, fmt.Errorf("node %s: list the containers restored for stack %s: %w", nodeName, stackName, err)
	}
	return list, nil
}

// RemoveOn force-removes containers on one node through its agent.
func (s *Restores) RemoveOn(ctx context.Context, nodeName string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.nodes.Remove(ctx, nodeName, ids); err != nil {
		return fmt.Errorf("node %s: remove containers %v: %w", nodeName, ids, err)
	}
	return nil
}

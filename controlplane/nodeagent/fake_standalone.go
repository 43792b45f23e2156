package nodeagent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

var _ StandaloneLister = (*FakeExecutor)(nil)

// Standalone implements StandaloneLister: the fake node has no restored standalone
// containers (tests that need some wrap the FakeExecutor and override this).
func (f *FakeExecutor) Standalone(_ context.Context, _ string) ([]node.Standalone, error) {
	return nil, nil
}

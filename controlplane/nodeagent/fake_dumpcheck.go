package nodeagent

import (
	"context"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

var _ DumpChecker = (*FakeExecutor)(nil)

// CheckDump implements DumpChecker: the error set in Undumpable for c, if any.
func (f *FakeExecutor) CheckDump(_ context.Context, c node.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Undumpable[c.ID]
}

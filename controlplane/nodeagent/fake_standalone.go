package nodeagent

import "context"

var _ StandaloneLister = (*FakeExecutor)(nil)

// Standalone implements StandaloneLister: the fake node has no restored standalone
// containers (tests that need some wrap the FakeExecutor and override this).
func (f *FakeExecutor) Standalone(_ context.Context, _ string) ([]Standalone, error) {
	return nil, nil
}

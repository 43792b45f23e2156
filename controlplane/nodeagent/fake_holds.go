package nodeagent

import (
	"context"
	"sort"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

var _ HoldLister = (*FakeExecutor)(nil)

// Holds implements HoldLister: the fake's locked and frozen containers (no deadline,
// held by a live worker).
func (f *FakeExecutor) Holds(_ context.Context) ([]node.Held, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]*node.Held{}
	get := func(c string) *node.Held {
		if by[c] == nil {
			by[c] = &node.Held{ContainerID: c, Name: c, OwnerAlive: true}
		}
		return by[c]
	}
	for c, v := range f.locked {
		if v {
			get(c).Locked = true
		}
	}
	for c, v := range f.frozen {
		if v {
			get(c).Frozen = true
		}
	}
	out := make([]node.Held, 0, len(by))
	for _, h := range by {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, nil
}

package coordinator

import (
	"context"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/holdtime"
)

// snapshotBudget returns how long a snapshot of m's containers may take when its
// request does not say (holdtime: base + per container + bytes at the floor rate, of
// the busiest node), and how it was found. The bytes are the image sizes of the
// stack's latest committed snapshot, per container; if a container has none (a first
// snapshot, a new service or slot), the configured SnapshotTimeout is used instead. The
// containers' hold deadlines follow from it (the algorithms give them the remaining
// time plus a grace), so a small stack whose coordinator fails is released soon, and a
// large one is not released in the middle of its dump.
func (s *Service) snapshotBudget(ctx context.Context, m *store.Manifest) (time.Duration, string) {
	fallback := func(why string) (time.Duration, string) {
		return s.cfg.SnapshotTimeout, why + ": the configured snapshot timeout"
	}
	ms, err := s.cfg.Store.List(ctx, m.Stack)
	if err != nil {
		return fallback("earlier snapshots unreadable (" + err.Error() + ")")
	}
	var last *store.Manifest
	for _, o := range ms { // oldest first
		if o.State == store.StateCommitted {
			last = o
		}
	}
	if last == nil {
		return fallback("no earlier snapshot of the stack")
	}
	sizes := map[string]int64{}
	for _, c := range last.Containers {
		if c.Images != nil {
			sizes[c.Key()] = c.Images.Bytes()
		}
	}
	work := map[string]holdtime.Work{}
	for _, c := range m.Containers {
		n, ok := sizes[c.Key()]
		if !ok {
			return fallback(c.Key() + " is not in the latest snapshot " + last.ID)
		}
		work[c.Node] = work[c.Node].Add(holdtime.Work{Containers: 1, Bytes: n})
	}
	return s.cfg.Hold.Stack(work), "the work of " + last.ID + " (" + s.cfg.Hold.String() + ")"
}

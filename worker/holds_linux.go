package worker

import (
	"context"
	"fmt"
	"net/http"
	"sort"
)

// Holds implements Holder: the holds of this node's journal, soonest deadline
// first.
func (w *Worker) Holds(ctx context.Context) ([]Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	holds, err := w.journal.List()
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	out := make([]Held, 0, len(holds))
	for _, h := range holds {
		if !h.Locked && !h.Frozen {
			continue
		}
		e := Held{ContainerID: h.ContainerID, Name: h.Name, Locked: h.Locked, Frozen: h.Frozen, Deadline: h.Deadline}
		if h.Owner != nil {
			e.OwnerPid, e.OwnerAlive = h.Owner.Pid, h.Owner.Alive()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Deadline.Before(out[j].Deadline) })
	return out, nil
}

func (w *Worker) holdsAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("GET /v1/holds", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Holds(ctx)
	})
}

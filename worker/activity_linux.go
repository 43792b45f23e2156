package worker

import (
	"context"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/activity"
)

var _ ActivityCounter = (*Worker)(nil)

// Activity implements ActivityCounter: the counters of the container's network
// namespace and cgroup (package activity).
func (w *Worker) Activity(ctx context.Context, name string) (activity.Counters, error) {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return activity.Counters{}, err
	}
	read := w.p.Activity
	if read == nil {
		read = activity.Reader{}.Read
	}
	t, err := read(c.Pid)
	if err != nil {
		return activity.Counters{}, fmt.Errorf("worker %s: activity of %s: %w", w.cfg.Node, c, err)
	}
	return t, nil
}

func (w *Worker) activityAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("GET /v1/containers/{name}/activity", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Activity(ctx, r.PathValue("name"))
	})
}

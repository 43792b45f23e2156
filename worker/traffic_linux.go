package worker

import (
	"context"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/netcount"
)

var _ TrafficCounter = (*Worker)(nil)

// Traffic implements TrafficCounter: the counters of the container's network namespace
// (/proc/PID/net/dev).
func (w *Worker) Traffic(ctx context.Context, name string) (netcount.Counters, error) {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return netcount.Counters{}, err
	}
	t, err := netcount.Read(c.Pid)
	if err != nil {
		return netcount.Counters{}, fmt.Errorf("worker %s: traffic of %s: %w", w.cfg.Node, c, err)
	}
	return t, nil
}

func (w *Worker) trafficAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("GET /v1/containers/{name}/traffic", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Traffic(ctx, r.PathValue("name"))
	})
}

package worker

import (
	"context"
	"errors"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

var _ ContainerStater = (*Worker)(nil)

// ContainerState implements ContainerStater.
func (w *Worker) ContainerState(ctx context.Context, name string) (ContainerState, error) {
	c, err := w.p.Inspector.Resolve(ctx, name)
	switch {
	case errors.Is(err, container.ErrNotFound):
		return ContainerGone, nil
	case errors.Is(err, container.ErrNotRunning):
		return ContainerExited, nil
	case err != nil:
		return "", err
	}
	frozen, err := w.p.Freezer.Frozen(ctx, c)
	if err != nil {
		return "", err
	}
	if frozen {
		return ContainerFrozen, nil
	}
	return ContainerRunning, nil
}

func (w *Worker) containerStateAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("GET /v1/containers/{name}/state", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		st, err := w.ContainerState(ctx, r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return struct {
			State ContainerState `json:"state"`
		}{st}, nil
	})
}

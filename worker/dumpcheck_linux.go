package worker

import (
	"context"
	"net/http"
)

// CheckDump implements Dumper: the checks of a dump's first step, nothing held.
func (w *Worker) CheckDump(ctx context.Context, name string) error {
	_, err := w.resolveDumpable(ctx, name)
	return err
}

func (w *Worker) dumpCheckAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("POST /v1/containers/{name}/dumpable", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.CheckDump(ctx, r.PathValue("name"))
	})
}

package worker

import (
	"context"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// Standalone implements Inspector (through the Restorer, restore.Docker).
func (w *Worker) Standalone(ctx context.Context, stack string) ([]restore.Standalone, error) {
	l, ok := w.p.Restorer.(interface {
		Standalone(ctx context.Context, stack string) ([]restore.Standalone, error)
	})
	if !ok {
		return nil, fmt.Errorf("worker %s: its restorer cannot list restored containers", w.cfg.Node)
	}
	if stack == "" {
		return nil, fmt.Errorf("worker %s: list restored containers: no stack given", w.cfg.Node)
	}
	out, err := l.Standalone(ctx, stack)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return out, nil
}

func (w *Worker) standaloneAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("GET /v1/standalone", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		out, err := w.Standalone(ctx, r.URL.Query().Get("stack"))
		if out == nil && err == nil {
			out = []restore.Standalone{}
		}
		return out, err
	})
}

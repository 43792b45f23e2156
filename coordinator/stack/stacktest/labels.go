package stacktest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// LabelSource is what the coordinator's policy reconciler reads labels through
// (stack.Docker, stack.FakeLabels).
type LabelSource interface {
	ServiceLabels(ctx context.Context) ([]stack.ServiceLabels, error)
	WatchServices(ctx context.Context, changed func()) error
}

// Labels checks src on a deployed stack with service service: setLabel(key, value)
// changes that service's label (a `docker service update --label-add`). The watch
// must report the change and ServiceLabels must list the new value under the stack.
func Labels(t *testing.T, src LabelSource, stackName, service string, setLabel func(key, value string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	var events atomic.Int64
	done := make(chan error, 1)
	go func() { done <- src.WatchServices(wctx, func() { events.Add(1) }) }()
	// An event stream has no replay: a change made before the watch subscribed is not
	// seen, so change the label again until an event comes.
	var value string
	for events.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no service event within a minute of changing a label of %s", service)
		}
		value = time.Now().Format("150405.000000")
		setLabel("io.swarmckpt.test", value)
		for i := 0; i < 20 && events.Load() == 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("WatchServices after its context ended: %v (want nil)", err)
	}
	ls, err := src.ServiceLabels(ctx)
	if err != nil {
		t.Fatalf("ServiceLabels: %v", err)
	}
	for _, l := range ls {
		if l.Service == service {
			if l.Stack != stackName || l.Labels["io.swarmckpt.test"] != value || l.Labels[stack.NamespaceLabel] != stackName {
				t.Fatalf("ServiceLabels lists %+v; want stack %s and io.swarmckpt.test=%s", l, stackName, value)
			}
			return
		}
	}
	t.Fatalf("ServiceLabels = %+v: no service %s", ls, service)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/activity"
)

// ActivityCounter is an optional role of a Holder: it reads what a container did, the
// bytes and packets its network interfaces carried (loopback left out) and the CPU
// time its cgroup used. The node agent reads it when a snapshot locks a container and
// once its fresh dump is done, for the minimal algorithm (a container whose counters
// did not move since its last image reuses it).
type ActivityCounter interface {
	Activity(ctx context.Context, containerName string) (activity.Counters, error)
}

// ErrNoActivity is returned by a fake asked for the counters of a container it was
// given none for.
var ErrNoActivity = errors.New("no activity counters for this container")

// Activity implements ActivityCounter.
func (c *Client) Activity(ctx context.Context, name string) (activity.Counters, error) {
	var out activity.Counters
	err := c.call(ctx, http.MethodGet, cpath(name, "activity"), apiRequest{}, &out)
	return out, err
}

// Activity implements ActivityCounter: the counters SetActivity gave c (ErrNoActivity
// if none).
func (f *Fake) Activity(_ context.Context, c string) (activity.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.acts[c]
	if !ok {
		return activity.Counters{}, fmt.Errorf("fake worker %s: %s: %w", f.Node, c, ErrNoActivity)
	}
	return t, nil
}

// SetActivity sets the counters Activity reports for container c.
func (f *Fake) SetActivity(c string, t activity.Counters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.acts == nil {
		f.acts = map[string]activity.Counters{}
	}
	f.acts[c] = t
}

var (
	_ ActivityCounter = (*Client)(nil)
	_ ActivityCounter = (*Fake)(nil)
)

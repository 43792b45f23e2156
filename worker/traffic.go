package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/netcount"
)

// TrafficCounter is an optional role of a Holder: it reads how many bytes a container
// sent and received over its network interfaces (loopback left out), every connection
// together. The node agent reads it when it locks a container, for the minimal
// algorithm (a container whose counters did not move since its last image reuses it).
type TrafficCounter interface {
	Traffic(ctx context.Context, containerName string) (netcount.Counters, error)
}

// ErrNoTraffic is returned by a fake asked for the counters of a container it was not
// given any for.
var ErrNoTraffic = errors.New("no traffic counters for this container")

// Traffic implements TrafficCounter.
func (c *Client) Traffic(ctx context.Context, name string) (netcount.Counters, error) {
	var out netcount.Counters
	err := c.call(ctx, http.MethodGet, cpath(name, "traffic"), apiRequest{}, &out)
	return out, err
}

// Traffic implements TrafficCounter: the counters SetTraffic gave c (ErrNoTraffic if
// none).
func (f *Fake) Traffic(_ context.Context, c string) (netcount.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.traffic[c]
	if !ok {
		return netcount.Counters{}, fmt.Errorf("fake worker %s: %s: %w", f.Node, c, ErrNoTraffic)
	}
	return t, nil
}

// SetTraffic sets the counters Traffic reports for container c.
func (f *Fake) SetTraffic(c string, t netcount.Counters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.traffic == nil {
		f.traffic = map[string]netcount.Counters{}
	}
	f.traffic[c] = t
}

var (
	_ TrafficCounter = (*Client)(nil)
	_ TrafficCounter = (*Fake)(nil)
)

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Connector opens one transport (one connection) to the bus under test.
type Connector func(ctx context.Context, name string) (bus.Transport, error)

// Workers is W simulated workers, each answering markers on its own connection.
type Workers struct {
	conns []bus.Transport
}

// workerName is the node name of worker i.
func workerName(i int) string { return fmt.Sprintf("w%05d", i) }

// StartWorkers connects w workers; each answers a marker for its container with a done
// to the coordinator, carrying the marker's snapshot and epoch.
func StartWorkers(ctx context.Context, connect Connector, w int) (*Workers, error) {
	ws := &Workers{}
	for i := range w {
		name := workerName(i)
		t, err := connect(ctx, name)
		if err != nil {
			return ws, fmt.Errorf("worker %s: connect: %w", name, err)
		}
		ws.conns = append(ws.conns, t)
		self := protocol.NodeAddr(name)
		if _, err := t.Subscribe(node.NodeSubject(name), func(m *bus.Msg) {
			env, err := protocol.Decode(m.Data)
			if err != nil || env.Type != protocol.TypeMarker {
				return // not ours: a real agent logs and drops it
			}
			out, err := protocol.Encode(protocol.Envelope{Version: protocol.Version, Type: protocol.TypeDone,
				Snapshot: env.Snapshot, Epoch: env.Epoch, From: self, To: protocol.Coordinator, Body: &protocol.Result{}})
			if err == nil {
				_ = t.Publish(ctx, node.CoordinatorSubject(), out)
			}
		}); err != nil {
			return ws, fmt.Errorf("worker %s: subscribe: %w", name, err)
		}
	}
	return ws, nil
}

// Close closes every worker's connection.
func (ws *Workers) Close() error {
	var errs []error
	for _, t := range ws.conns {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// Coordinator sends the markers of a round and counts the answers.
type Coordinator struct {
	t       bus.Transport
	workers int
	epoch   atomic.Uint64
	mu      sync.Mutex
	got     int
	done    chan struct{}
}

// NewCoordinator subscribes to the coordinator's subject on t.
func NewCoordinator(t bus.Transport, workers int) (*Coordinator, error) {
	c := &Coordinator{t: t, workers: workers}
	if _, err := t.Subscribe(node.CoordinatorSubject(), c.answer); err != nil {
		return nil, fmt.Errorf("coordinator: subscribe: %w", err)
	}
	return c, nil
}

func (c *Coordinator) answer(m *bus.Msg) {
	env, err := protocol.Decode(m.Data)
	if err != nil || env.Type != protocol.TypeDone || env.Epoch != c.epoch.Load() {
		return // a late answer of an earlier round
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got++
	if c.got == c.workers && c.done != nil {
		close(c.done)
		c.done = nil
	}
}

// Round sends a marker to every worker and waits until all answered (or ctx ends); it
// returns the time from the first marker's send to the last answer.
func (c *Coordinator) Round(ctx context.Context) (time.Duration, error) {
	epoch := c.epoch.Add(1)
	snap := fmt.Sprintf("round-%d", epoch)
	done := make(chan struct{})
	c.mu.Lock()
	c.got, c.done = 0, done
	c.mu.Unlock()
	start := time.Now()
	for i := range c.workers {
		name := workerName(i)
		b, err := protocol.Encode(protocol.Envelope{Version: protocol.Version, Type: protocol.TypeMarker, Snapshot: snap,
			Epoch: epoch, From: protocol.Coordinator, To: protocol.ContainerAddr(name + "-c"), Body: &protocol.Marker{}})
		if err != nil {
			return 0, err
		}
		if err := c.t.Publish(ctx, node.NodeSubject(name), b); err != nil {
			return 0, fmt.Errorf("marker to %s: %w", name, err)
		}
	}
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		c.mu.Lock()
		got := c.got
		c.mu.Unlock()
		return 0, fmt.Errorf("round %d: %d of %d answers before %w", epoch, got, c.workers, ctx.Err())
	}
}

// Measure runs warmup + rounds rounds (each bounded by timeout) and returns the times
// of the measured ones.
func Measure(ctx context.Context, c *Coordinator, warmup, rounds int, timeout time.Duration) ([]time.Duration, error) {
	var out []time.Duration
	for i := range warmup + rounds {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		d, err := c.Round(rctx)
		cancel()
		if err != nil {
			return out, err
		}
		if i >= warmup {
			out = append(out, d)
		}
	}
	return out, nil
}

package coordinator

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// liveness tracks worker heartbeats: a worker silent for longer than its timeout is
// declared failed, and every snapshot it is in is aborted.
type liveness struct {
	s       *Service
	timeout time.Duration
	mu      sync.Mutex
	seen    map[string]time.Time
	started map[string]time.Time // node -> its agent's start (Heartbeat.Started)
	info    map[string]store.Worker
	release map[string]func(context.Context) error
}

func newLiveness(s *Service, timeout time.Duration) *liveness {
	return &liveness{s: s, timeout: timeout, seen: map[string]time.Time{}, started: map[string]time.Time{}, info: map[string]store.Worker{},
		release: map[string]func(context.Context) error{}}
}

func (l *liveness) subscribe() (bus.Subscription, error) {
	return l.s.cfg.Bus.Subscribe(node.HeartbeatSubject, func(m *bus.Msg) {
		var hb node.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Worker.Node == "" {
			return
		}
		if hb.Leaving {
			l.gone(hb.Worker.Node, "its worker shut down")
			return
		}
		l.mu.Lock()
		_, known := l.seen[hb.Worker.Node]
		prev := l.started[hb.Worker.Node]
		restarted := known && !prev.IsZero() && !hb.Started.IsZero() && !hb.Started.Equal(prev)
		l.seen[hb.Worker.Node] = time.Now()
		l.started[hb.Worker.Node] = hb.Started
		l.info[hb.Worker.Node] = hb.Worker
		l.mu.Unlock()
		if restarted {
			// Restarted (by a supervisor, within a second) before its heartbeats were
			// missed: its roles in running snapshots are gone (the new agent released
			// their containers), so those snapshots cannot finish: abort them now.
			l.s.log.Warn("agent restarted", "node", hb.Worker.Node)
			l.s.NodeFailed(hb.Worker.Node, "its agent restarted (its part in the snapshot was lost; the new agent released its containers)")
		}
		if !known {
			l.s.log.Info("worker joined", "node", hb.Worker.Node, "criu", hb.Worker.CRIUVersion)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rel, err := l.s.cfg.Store.RegisterWorker(ctx, hb.Worker, l.timeout)
			cancel()
			if err == nil {
				l.mu.Lock()
				l.release[hb.Worker.Node] = rel
				l.mu.Unlock()
			}
		}
	})
}

func (l *liveness) gone(node, why string) {
	l.mu.Lock()
	_, known := l.seen[node]
	delete(l.seen, node)
	delete(l.started, node)
	delete(l.info, node)
	rel := l.release[node]
	delete(l.release, node)
	l.mu.Unlock()
	if rel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = rel(ctx)
		cancel()
	}
	if known {
		l.s.log.Warn("worker left", "node", node, "why", why)
	}
	l.s.NodeFailed(node, why)
}

func (l *liveness) watch(ctx context.Context) {
	t := time.NewTicker(l.timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var dead []string
		l.mu.Lock()
		for n, at := range l.seen {
			if time.Since(at) > l.timeout {
				dead = append(dead, n)
			}
		}
		l.mu.Unlock()
		for _, n := range dead {
			l.gone(n, "no heartbeat for "+l.timeout.String()+": its agent died, or NATS does not reach it or this coordinator")
		}
	}
}

// live returns the workers heard from recently, sorted by node.
func (l *liveness) live() []store.Worker {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]store.Worker, 0, len(l.info))
	for _, w := range l.info {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// agent returns when node's agent started (Heartbeat.Started) and whether it is live
// (heard from within the timeout, not gone).
func (l *liveness) agent(node string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.seen[node]
	return l.started[node], ok && time.Since(at) <= l.timeout
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// stopTimeoutPerNode bounds one node's answer to a stop (or resume) of the containers
// a snapshot parked there.
const stopTimeoutPerNode = 90 * time.Second

// StopParked ends the containers of a committed snapshot taken with Exit (a
// migration's, or the checkpoint a restore takes of the running stack), which their
// nodes keep frozen and locked since their dump (worker/agent park.go); with resume it
// releases them instead (they run on). Nodes in parallel. The error names every
// container that could not be ended, and why; a container that was released after
// its dump (it ran on) is never ended.
func (s *Restores) StopParked(ctx context.Context, m *store.Manifest, resume bool) error {
	_, err := s.stopOutcomes(ctx, m, resume)
	return err
}

// stopOutcomes is StopParked that returns, by container id, what each node found and
// did (node.StopOutcome): a node that did not answer leaves its containers
// node.StopUnknown; one of an older version, which answers without outcomes, leaves
// them ended if it ended them, and node.StopGone otherwise (what such a coordinator
// assumed).
func (s *Restores) stopOutcomes(ctx context.Context, m *store.Manifest, resume bool) (map[string]node.StopOutcome, error) {
	byNode := map[string][]string{}
	for _, c := range m.Containers {
		byNode[c.Node] = append(byNode[c.Node], c.ContainerID)
	}
	what := "stop"
	if resume {
		what = "release"
	}
	t0 := time.Now()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []string
		outs = map[string]node.StopOutcome{}
	)
	for nodeName, ids := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeoutPerNode)
			rep, err := s.nodes.StopParked(cctx, nodeName, node.StopRequest{Snapshot: m.ID, Containers: ids, Resume: resume})
			cancel()
			if errors.Is(err, bus.ErrNoResponders) {
				err = fmt.Errorf("no live agent (its containers are released at their hold's deadline and run on)")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				o := node.StopOutcome{Container: id, Outcome: node.StopUnknown}
				switch {
				case rep == nil:
					o.Detail = fmt.Sprintf("node %s did not answer: %v", nodeName, err)
				case len(rep.Containers) == 0 && err == nil && !resume:
					o.Outcome = node.StopEnded
				case len(rep.Containers) == 0:
					// An older agent: it refused to end a container not parked
					// (ended before), and released a parked one or did nothing.
					// Counted gone, as such a coordinator did: its put-back
					// replaces it from the snapshot.
					o.Outcome, o.Detail = node.StopGone, fmt.Sprintf("node %s's agent is of an older version: it says no outcome", nodeName)
				}
				outs[id] = o
			}
			if rep != nil {
				for _, o := range rep.Containers {
					outs[o.Container] = o
				}
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("node %s: %v", nodeName, err))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return outs, fmt.Errorf("%s the containers of %s held since their dump: %s", what, m.ID, strings.Join(errs, "; "))
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "stopped-after-dump", Message: describeOutcomes(outs), MS: time.Since(t0).Milliseconds()})
	return outs, nil
}

// describeOutcomes says what a stop or release of parked containers found, counted.
func describeOutcomes(outs map[string]node.StopOutcome) string {
	n := map[string]int{}
	for _, o := range outs {
		n[o.Outcome]++
	}
	var parts []string
	for _, w := range []struct{ outcome, what string }{
		{node.StopEnded, "ended, frozen since their dump"},
		{node.StopReleased, "released: they run on as before"},
		{node.StopRunning, "not held any more: released after their dump, they ran on"},
		{node.StopGone, "no longer running (ended before)"},
		{node.StopUnknown, "not known"},
	} {
		if n[w.outcome] > 0 {
			parts = append(parts, fmt.Sprintf("%d containers %s", n[w.outcome], w.what))
		}
	}
	return strings.Join(parts, "; ")
}

// parkedStack ends the containers of an Exit snapshot, parked since their dump, at the
// right moment of the stop that follows it: once swarm ordered their tasks to shut
// down (StopServices' kill), not before. A task ended before the scale-down counts as
// failed and swarm starts a replacement, whose address allocation can outlive the
// scale-down and refuse the restored containers their addresses ("attaching to
// network failed ... Address already in use", seen on the lab).
type parkedStack struct {
	s *Restores
	m *store.Manifest

	mu       sync.Mutex
	ended    bool // end ran
	released bool // release ran
	err      error
}

func (s *Restores) newParkedStack(m *store.Manifest) *parkedStack { return &parkedStack{s: s, m: m} }

// killFunc is the kill function of a stop: the parked containers first, then whatever
// else still runs of the stack's tasks. A nil parkedStack kills the tasks only.
func (p *parkedStack) killFunc() func(ctx context.Context, byNode map[string][]string) {
	if p == nil {
		return nil
	}
	return func(ctx context.Context, byNode map[string][]string) {
		_ = p.end(ctx)
		p.s.killTasks(ctx, byNode)
	}
}

// end ends the parked containers, once; later calls return the first one's error.
func (p *parkedStack) end(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended && !p.released {
		p.ended = true
		p.err = p.s.StopParked(ctx, p.m, false)
	}
	return p.err
}

// release lets the parked containers run on, unless they were ended: what a
// restore or migration refused before its stop does.
func (p *parkedStack) release(ctx context.Context) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || p.released {
		return
	}
	p.released = true
	if err := p.s.StopParked(ctx, p.m, true); err != nil {
		p.s.log.Warn("cannot release the containers held since their dump (their holds' deadlines do)", "snapshot", p.m.ID, "err", err)
	}
}

// wasEnded says whether end ran (the stack was stopped, or is being stopped).
func (p *parkedStack) wasEnded() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

// endSome ends the parked containers of p's snapshot with the given keys
// (SERVICE.SLOT) now, and counts p as ended: a partial migration ends a service's
// moved containers one service at a time (partial.go). A later end ends nothing.
func (p *parkedStack) endSome(ctx context.Context, keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return fmt.Errorf("the containers of %s were released", p.m.ID)
	}
	p.ended = true
	sub := *p.m
	sub.Containers = nil
	for _, c := range p.m.Containers {
		if slices.Contains(keys, c.Key()) {
			sub.Containers = append(sub.Containers, c)
		}
	}
	if len(sub.Containers) == 0 {
		return nil
	}
	return p.s.StopParked(ctx, &sub, false)
}

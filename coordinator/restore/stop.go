package restore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// stopTimeout bounds stopping the stack before a restore.
const stopTimeout = time.Minute

// stopStack stops the stack's running tasks before a restore (when a Stopper is
// configured). With a ServiceStopper it returns the replicas the services had, and
// the tasks' containers are killed through their nodes' agents as soon as swarm
// ordered their shutdown: what gets restored is the snapshot, so the running processes need no
// graceful stop (a PID 1 without a SIGTERM handler would otherwise cost the whole stop
// grace period, 10 s by default).
// kill, when not nil, replaces killTasks (parkedStack.killFunc).
func (s *Restores) stopStack(ctx context.Context, m *store.Manifest, kill func(ctx context.Context, byNode map[string][]string)) (map[string]uint64, error) {
	if s.cfg.Stopper == nil {
		return nil, nil
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "stopping", Message: "scaling the running services of stack " + m.Stack + " to 0"})
	sctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	t0 := time.Now()
	if ss, ok := s.cfg.Stopper.(ServiceStopper); ok {
		if kill == nil {
			kill = s.killTasks
		}
		prior, err := ss.StopServices(sctx, m.Stack, kill)
		if err != nil {
			return prior, api.Errorf(api.CodeFailed, "stop the running stack before restoring: %v", err)
		}
		s.event(ctx, api.Event{ID: m.ID, Phase: "stopped", Message: "services of stack " + m.Stack + " at 0 (were " + describeReplicas(prior) + ")", MS: time.Since(t0).Milliseconds()})
		return prior, nil
	}
	if err := s.cfg.Stopper.StopStack(sctx, m.Stack); err != nil {
		return nil, api.Errorf(api.CodeFailed, "stop the running stack before restoring: %v", err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "stopped", Message: "services of stack " + m.Stack + " at 0", MS: time.Since(t0).Milliseconds()})
	return nil, nil
}

// killTasks force-removes the given containers through their nodes' agents (best
// effort: a container left alone still stops gracefully).
func (s *Restores) killTasks(ctx context.Context, byNode map[string][]string) {
	var wg sync.WaitGroup
	for nodeName, ids := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := s.nodes.Remove(cctx, nodeName, ids)
			cancel()
			if err != nil {
				s.log.Warn("cannot kill the stack's task containers (they stop gracefully instead)", "node", nodeName, "containers", ids, "err", err)
			}
		}()
	}
	wg.Wait()
}

// scaleBack starts the services a failed restore had stopped again, at the replicas
// they had, and returns the error to report: the restore's cause, and that the
// services run again, fresh from their images. Without recorded replicas it says
// the stack was left stopped and how to start it.
func (s *Restores) scaleBack(ctx context.Context, m *store.Manifest, prior map[string]uint64, cause error) error {
	ss, ok := s.cfg.Stopper.(ServiceStopper)
	if !ok || len(prior) == 0 {
		if s.cfg.Stopper == nil {
			return api.Errorf(api.CodeFailed, "restore of %s: %v", m.ID, cause)
		}
		return api.Errorf(api.CodeFailed, "restore of %s: %v (the services of stack %s were scaled to 0 and are left so: start them with 'docker service scale SERVICE=N')", m.ID, cause, m.Stack)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := ss.ScaleServices(cctx, m.Stack, prior, nil); err != nil {
		return api.Errorf(api.CodeFailed, "restore of %s failed: %v; starting the services of stack %s again failed too (%v): start them by hand: docker service scale %s",
			m.ID, cause, m.Stack, err, scaleArgs(prior))
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "scaled-back", Message: "restore failed: services of stack " + m.Stack + " started again fresh from their images: " + describeReplicas(prior)})
	return api.Errorf(api.CodeFailed, "restore of %s failed, so the services of stack %s were started again fresh from their images (%s; their state is the images', not the snapshot's): %v",
		m.ID, m.Stack, describeReplicas(prior), cause)
}

// describeReplicas is "svc=N, svc2=M" in name order.
func describeReplicas(r map[string]uint64) string {
	if len(r) == 0 {
		return "none running"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r[k]))
	}
	return strings.Join(parts, ", ")
}

func scaleArgs(r map[string]uint64) string { return strings.ReplaceAll(describeReplicas(r), ",", "") }

var (
	_ ServiceStopper = (*stack.Docker)(nil)
	_ ServiceStopper = (*stack.FakeSwarm)(nil)
)

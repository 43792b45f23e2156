package coordinator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// excludeServices leaves the containers of the services named in exclude
// (swarmckpt.exclude) out of st, and returns what is left with how many containers
// each excluded service ran. A stack with nothing left to snapshot is refused
// (CodeBadRequest).
func excludeServices(st *stack.Stack, exclude []string) (*stack.Stack, map[string]int, error) {
	if len(exclude) == 0 {
		return st, nil, nil
	}
	out := *st
	out.Containers = nil
	excluded := map[string]int{}
	for _, svc := range exclude {
		excluded[svc] = 0
	}
	for _, c := range st.Containers {
		if _, ok := excluded[c.Service]; ok {
			excluded[c.Service]++
			continue
		}
		out.Containers = append(out.Containers, c)
	}
	if len(out.Containers) == 0 {
		return nil, nil, api.Errorf(api.CodeBadRequest, "stack %s: every running container belongs to an excluded service (%s, swarmckpt.exclude): nothing to snapshot; remove the label from a service that holds state",
			st.Name, strings.Join(slices.Sorted(maps.Keys(excluded)), ", "))
	}
	return &out, excluded, nil
}

// startExcluded starts again, fresh from their images, the services a snapshot left
// out (m.Excluded), once a restore of it stopped the stack: at the replicas they had
// when the snapshot was taken. Without a ServiceStopper nothing was stopped.
func (s *Service) startExcluded(ctx context.Context, m *store.Manifest) error {
	ss, ok := s.cfg.Stopper.(ServiceStopper)
	if !ok || len(m.Excluded) == 0 {
		return nil
	}
	replicas := map[string]uint64{}
	for svc, n := range m.Excluded {
		replicas[svc] = uint64(n)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := ss.ScaleServices(cctx, m.Stack, replicas, nil); err != nil {
		return api.Errorf(api.CodeFailed, "restore of %s done, but its excluded services (swarmckpt.exclude, started fresh) could not be started: %v: start them with docker service scale %s",
			m.ID, err, scaleArgs(replicas))
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "excluded-started", Message: fmt.Sprintf("services left out of the snapshot (swarmckpt.exclude) started fresh from their images: %s", describeReplicas(replicas))})
	return nil
}

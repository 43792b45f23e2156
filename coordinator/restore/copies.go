package restore

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// The replicas of an image set (swarmckpt.replicas, coordinator/replicate.go): the set
// of the same name on the nodes in Container.Copies. The set a restore of c reads is
// on HomeOf(c) (exact.go): the dumping node, a direct migration's target, or the copy
// the coordinator's heal promoted.

// hasCopy says whether node n holds a replica of c's image set.
func hasCopy(c store.Container, n string) bool {
	for _, cp := range c.Copies {
		if cp.Node == n {
			return true
		}
	}
	return false
}

// keepsSet says whether a restore of c on node n must leave the set there (restore
// from a hard-linked copy): the set the snapshot keeps on n, its original or one of
// its replicas; a set sent to n for the restore alone is used up.
func keepsSet(c store.Container, n string) bool {
	return n == HomeOf(c) || hasCopy(c, n) || (n == c.Node && !c.Direct)
}

// heal runs the coordinator's Heal hook (nil: none) before a restore reads m's sets.
func (s *Restores) heal(ctx context.Context, m *store.Manifest) error {
	if s.cfg.Heal == nil {
		return nil
	}
	return s.cfg.Heal(ctx, m)
}

// startExcluded starts again, fresh from their images, the services a snapshot left
// out (m.Excluded, swarmckpt.exclude), once a restore of it stopped the stack: at the
// replicas they had when the snapshot was taken. Without a ServiceStopper nothing was
// stopped.
func (s *Restores) startExcluded(ctx context.Context, m *store.Manifest) error {
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

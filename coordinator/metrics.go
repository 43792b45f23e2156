package coordinator

import (
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/metrics"
)

// recordOutcome records a snapshot that ended in the metrics: a committed one's
// total time, bytes and containers; an aborted one's failure class.
func (s *Service) recordOutcome(m *store.Manifest, start time.Time) {
	if m.State != store.StateCommitted {
		s.cfg.Metrics.Aborted(m.Algorithm, failureClass(m.Reason))
		return
	}
	s.cfg.Metrics.Phase(m.Algorithm, metrics.PhaseTotal, time.Since(start))
	s.cfg.Metrics.Committed(m.Algorithm, m.Bytes())
	for _, c := range m.Containers {
		s.cfg.Metrics.Container(m.Algorithm, time.Duration(c.FreezeMS)*time.Millisecond, time.Duration(c.DumpMS)*time.Millisecond)
	}
}

// recordRecovered records a snapshot that the recovery of this coordinator (a
// restarted one, or a standby that took over from a dead leader) decided: the dead
// coordinator counted nothing of it, so without this an aborted one would be missing
// from the failures (reason coordinator-restart).
func (s *Service) recordRecovered(m *store.Manifest) {
	if !m.State.Final() {
		return // not decided (the store refused the abort): the next recovery counts it
	}
	s.recordOutcome(m, m.CreatedAt)
}

// failureClass maps an abort's reason (free text) to the few fixed words of the
// reason label of swarmckpt_snapshot_failures_total.
func failureClass(reason string) string {
	switch r := reason; {
	case strings.HasPrefix(r, "timeout"):
		return "timeout"
	case strings.Contains(r, "has no live worker"):
		return "no-worker"
	case strings.Contains(r, "left the cluster"):
		return "node-left"
	case strings.Contains(r, "stack lock was lost"):
		return "lock-lost"
	case strings.Contains(r, "coordinator restarted"), strings.Contains(r, "restarted during the snapshot"):
		return "coordinator-restart"
	case strings.Contains(r, "lost its leadership"):
		return "leadership-lost"
	case strings.HasPrefix(r, "commit refused"), strings.HasPrefix(r, "no image set arrived"), strings.HasPrefix(r, "the cut is not consistent"):
		return "commit"
	case strings.HasPrefix(r, "container "):
		return "container-failed"
	case strings.Contains(r, "refused the snapshot"):
		return "refused"
	case strings.Contains(r, "by the user"), strings.Contains(r, "interrupted"):
		return "user"
	}
	return "other"
}

package restore

import (
	"context"
	"fmt"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A put-back from a checkpoint (a failed migration's own snapshot, or the checkpoint a
// restore took of what ran) must not assume that an original it finds not ended was
// frozen since its dump. An original released after its dump (by its node's agent
// restarting, or by its worker at its hold's deadline while the coordinator was slow)
// ran on: its state is NEWER than the checkpoint, and ending it to restore the
// checkpoint in its place destroys what it did since (fault seed 1793: a bank holder
// released by a restarted agent ran on for 300 ms, was removed and replaced by its
// stale checkpoint: messages lost). So every put-back first asks the originals'
// nodes to release them (settleOriginals) and reads what each found:
//
//	released (parked since its dump)  -> kept: it runs on with the checkpoint's state
//	running  (released since its dump) -> kept: it ran on, never ended or replaced
//	gone     (ended)                   -> put back from the checkpoint
//	unknown  (its node did not answer) -> left as it is, named in the error
//
// Only the gone ones are put back.

// settled is what settleOriginals found of a put-back's originals.
type settled struct {
	// gone are the originals that are ended: put back from the checkpoint.
	gone []store.Container
	// kept are the originals that run on where they were (ids): released now, or
	// running since an earlier release; never ended, removed or replaced.
	kept map[string]bool
	// ranOn describes the kept originals that ran on after their dump (their state
	// is newer than the checkpoint's), unknown those whose node did not answer.
	ranOn, unknown []string
}

// settleOriginals releases the originals of m (a checkpoint whose containers were
// parked at its dump) and sorts them by what their nodes found (above).
func (s *Restores) settleOriginals(ctx context.Context, m *store.Manifest) settled {
	out := settled{kept: map[string]bool{}}
	if len(m.Containers) == 0 {
		return out
	}
	outs, err := s.stopOutcomes(ctx, m, true)
	if err != nil {
		s.log.Warn("put back: releasing the originals held since their dump", "snapshot", m.ID, "err", err)
	}
	for _, c := range m.Containers {
		o := outs[c.ContainerID]
		switch o.Outcome {
		case node.StopReleased:
			out.kept[c.ContainerID] = true
		case node.StopRunning:
			out.kept[c.ContainerID] = true
			out.ranOn = append(out.ranOn, fmt.Sprintf("%s on node %s (%s)", c.Key(), c.Node, orDefault(o.Detail, "released after its dump")))
		case node.StopGone, node.StopEnded:
			out.gone = append(out.gone, c)
		default:
			out.unknown = append(out.unknown, fmt.Sprintf("%s on node %s (%s)", c.Key(), c.Node, orDefault(o.Detail, "no answer")))
		}
	}
	if len(out.ranOn) > 0 || len(out.unknown) > 0 {
		s.log.Warn("put back: originals not put back from the checkpoint", "snapshot", m.ID, "ran_on", out.ranOn, "unknown", out.unknown)
	}
	return out
}

// only returns a copy of m with the containers cs.
func only(m *store.Manifest, cs []store.Container) *store.Manifest {
	sub := *m
	sub.Containers = cs
	return &sub
}

// note says what the put-back found of the originals it did not put back ("": every
// one was put back), for an error or event.
func (o settled) note() string {
	var parts []string
	if len(o.ranOn) > 0 {
		parts = append(parts, "kept where they run, never ended (released after their dump, they ran on: their state is newer than the snapshot's): "+strings.Join(o.ranOn, "; "))
	}
	if len(o.unknown) > 0 {
		parts = append(parts, "left as they are, their nodes could not say whether they still run (if one does not, put it back with 'swarmckpt restore SNAPSHOT --on-original'): "+strings.Join(o.unknown, "; "))
	}
	return strings.Join(parts, "; ")
}

// orDefault is s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

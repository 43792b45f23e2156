package algotest

import (
	"errors"
	"fmt"
	"sort"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// ErrInconsistent is wrapped by CheckCut when a channel has an orphan or an end is missing.
var ErrInconsistent = errors.New("algotest: inconsistent cut")

// CheckCut proves the cut given by rec (container id -> recording) consistent over the
// participant set cs: every container is recorded and for every channel a->b, b's
// recorded Received from a <= a's recorded Sent to b. It names the first offending
// channel (in container order) otherwise.
func CheckCut(cs []protocol.Container, rec map[string]Recording) error {
	get := func(r Recording, peer string) (protocol.ConnCounter, bool) {
		for _, c := range r.Conns {
			if c.Peer == peer {
				return c, true
			}
		}
		return protocol.ConnCounter{}, false
	}
	for _, c := range cs {
		ra, ok := rec[c.ID]
		if !ok {
			return fmt.Errorf("container %s has no recording: %w", c.ID, ErrInconsistent)
		}
		for _, p := range c.Peers {
			rb, ok := rec[p]
			if !ok {
				return fmt.Errorf("channel %s->%s: %s has no recording: %w", c.ID, p, p, ErrInconsistent)
			}
			sa, ok1 := get(ra, p)
			rbc, ok2 := get(rb, c.ID)
			if !ok1 || !ok2 {
				return fmt.Errorf("channel %s->%s: counters missing at one end: %w", c.ID, p, ErrInconsistent)
			}
			if rbc.Received > sa.Sent {
				return fmt.Errorf("channel %s->%s: %s recorded %d bytes received but %s recorded only %d sent (orphan bytes): %w",
					c.ID, p, p, rbc.Received, c.ID, sa.Sent, ErrInconsistent)
			}
		}
	}
	return nil
}

// Check verifies the invariants after Settle: every accepted snapshot ended committed
// or aborted exactly once (and nothing else was decided), no container is left locked or
// frozen, the driver saw no contract violation, and, if consistent is true, every
// committed snapshot is a consistent cut.
func (d *Driver) Check(consistent bool) error {
	var errs []error
	errs = append(errs, d.checkErrors()...)
	count := map[string]int{}
	for _, o := range d.Outcomes {
		count[o.Snapshot]++
		if _, ok := d.Accepted[o.Snapshot]; !ok {
			errs = append(errs, fmt.Errorf("snapshot %s decided but never accepted", o.Snapshot))
		}
		if o.Committed && consistent {
			if err := CheckCut(d.opts.Containers, d.Recordings[o.Snapshot]); err != nil {
				errs = append(errs, fmt.Errorf("committed snapshot %s: %w", o.Snapshot, err))
			}
		}
	}
	ids := make([]string, 0, len(d.Accepted))
	for id := range d.Accepted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if n := count[id]; n != 1 {
			errs = append(errs, fmt.Errorf("snapshot %s (epoch %d) decided %d times, want exactly once", id, d.Accepted[id], n))
		}
	}
	if h := d.Held(); len(h) > 0 {
		errs = append(errs, fmt.Errorf("containers left locked or frozen after the end: %v", h))
	}
	return errors.Join(errs...)
}

func (d *Driver) checkErrors() []error {
	var errs []error
	for _, e := range d.Errors {
		errs = append(errs, errors.New(e))
	}
	return errs
}

// Committed returns the committed snapshot ids in order.
func (d *Driver) Committed() []string {
	var out []string
	for _, o := range d.Outcomes {
		if o.Committed {
			out = append(out, o.Snapshot)
		}
	}
	return out
}

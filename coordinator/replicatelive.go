package coordinator

import (
	"context"
	"fmt"
	"time"
)

// A copy of an image set (replicate.go) waits for its sender's answer up to
// copyTimeout (5 min). When the sender's or the receiver's node is lost meanwhile, no
// answer ever comes, and the snapshot would hold its stack's lock for those minutes:
// a node-loss restore of the stack (nodeloss.go) would wait for it. So each copy
// ends as soon as one of its two nodes has no live worker any more.

// liveCheckPeriod is how often a copy checks that its nodes are live.
const liveCheckPeriod = 250 * time.Millisecond

// untilGone returns a context that ends, with the cause, once one of nodes has no
// live worker (the coordinator's liveness), and what releases it.
func (s *Service) untilGone(ctx context.Context, nodes ...string) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(liveCheckPeriod)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			live := map[string]bool{}
			for _, w := range s.live.live() {
				live[w.Node] = true
			}
			for _, n := range nodes {
				if !live[n] {
					cancel(fmt.Errorf("node %s has no live worker any more (its agent's heartbeats stopped)", n))
					return
				}
			}
		}
	}()
	return cctx, func() { cancel(nil) }
}

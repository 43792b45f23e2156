package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Pre-copy (migrate --copy pre-copy) is a streamed migration whose moving containers
// are pre-dumped while they run, before the snapshot locks anything: each source's
// worker runs its iteration policy (worker/migrate.NextRound: rounds until the dirty
// set is under a bound, stops shrinking, or MaxIters) and keeps the pre-dumps; the
// source sends the pre-dumps to the target once the rounds are done (a set of their
// own, verified on arrival), still before anything is locked; the snapshot's dump of
// the container (node.Target.PreCopy) then writes only the pages dirtied since the
// last round, chained onto it, and streams the set to the target, whose receiver
// adopts the pre-dumps it holds already (every file of the set checksummed; those the
// target does not hold stream with it), the dumping node keeping its copy as for
// streamed: the rollback is the streamed one. The target links the chain when it
// restores the set.

// preCopyTimeout bounds the pre-dumps of one container (every round).
const preCopyTimeout = 10 * time.Minute

// preCopy pre-dumps the moving containers of pre (moving: container key -> target)
// on their nodes, all at once, and marks them PreCopy with their rounds. On failure
// the pre-dumps already kept are dropped (best effort) and the error names the
// container, its node and what to do; nothing else was touched (the containers ran
// on throughout).
func (s *Restores) preCopy(ctx context.Context, pre *store.Manifest, moving, addrs map[string]string) error {
	type result struct {
		i   int
		rep *node.PreCopyReply
		err error
	}
	var (
		wg      sync.WaitGroup
		results = make(chan result, len(pre.Containers))
		asked   []int
	)
	t0 := time.Now()
	for i, c := range pre.Containers {
		if _, ok := moving[c.Key()]; !ok {
			continue
		}
		asked = append(asked, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, preCopyTimeout)
			defer cancel()
			rep, err := s.nodes.PreCopy(cctx, c.Node, node.PreCopyRequest{Container: c.ContainerID, Set: node.SetID(pre.ID, c.Key()), To: addrs[c.Key()]})
			results <- result{i, rep, err}
		}()
	}
	wg.Wait()
	close(results)
	var failed []string
	var errs []error
	done := map[int]*node.PreCopyReply{}
	for r := range results {
		c := pre.Containers[r.i]
		if r.err != nil {
			failed = append(failed, c.Key())
			errs = append(errs, fmt.Errorf("%s on node %s: %w", c.Key(), c.Node, r.err))
			continue
		}
		done[r.i] = r.rep
	}
	if len(errs) > 0 {
		for _, i := range slices.Sorted(maps.Keys(done)) {
			c := pre.Containers[i]
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if err := s.nodes.Drop(dctx, c.Node, node.SetID(pre.ID, c.Key())); err != nil {
				s.log.Warn("cannot drop the pre-dumps of a failed pre-copy; the node's worker drops them when it restarts", "snapshot", pre.ID, "container", c.Key(), "node", c.Node, "err", err)
			}
			cancel()
		}
		err := errors.Join(errs...)
		why := "migrate with --copy streamed or --copy direct"
		if errors.Is(err, node.ErrNoSoftDirty) {
			why = "its kernel tracks no soft-dirty pages (CONFIG_MEM_SOFT_DIRTY off); " + why
		}
		return api.Errorf(api.CodeFailed, "migrate --copy pre-copy failed before anything was locked (the containers run on as before, their pre-dumps dropped): pre-dumping %s: %v; %s",
			strings.Join(failed, ", "), err, why)
	}
	for _, i := range asked {
		c, rep := &pre.Containers[i], done[i]
		c.PreCopy, c.PreDumps = true, len(rep.Rounds)
		var total int64
		sizes := make([]string, len(rep.Rounds))
		for k, b := range rep.Rounds {
			total += b
			sizes[k] = fmt.Sprint(b)
		}
		sent := fmt.Sprintf("sent ahead to node %s", moving[c.Key()])
		if rep.SentTo == "" {
			sent = "they stream with its set (sending them ahead failed: " + rep.SendError + ")"
		}
		s.event(ctx, api.Event{ID: pre.ID, Phase: "pre-copy", Message: fmt.Sprintf("%s: %d pre-dumps on node %s while it ran (%s bytes; %s), %s: its dump writes only the pages dirtied since",
			c.Key(), len(rep.Rounds), c.Node, strings.Join(sizes, ", "), rep.Why, sent)})
		s.log.Info("pre-copy rounds done", "snapshot", pre.ID, "container", c.Key(), "node", c.Node, "rounds", len(rep.Rounds), "bytes", total)
	}
	s.event(ctx, api.Event{ID: pre.ID, Phase: "pre-copy-done", MS: time.Since(t0).Milliseconds(), Message: fmt.Sprintf("%d containers pre-dumped; the snapshot locks, freezes and dumps them now", len(asked))})
	return nil
}

package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// setRef is one image set on one node.
type setRef struct{ node, set string }

// setsOf lists the image sets snapshot m wrote: each container's set on the node that
// dumped it, on the node a migration streamed it to, on the nodes holding its copies
// (replicas), and on every node a restore moved it to. A set reused from an earlier
// snapshot is named after that snapshot and is not listed (it is not m's to drop).
func setsOf(m *store.Manifest) []setRef {
	seen := map[setRef]bool{}
	var out []setRef
	add := func(nodeName, set string) {
		r := setRef{nodeName, set}
		if nodeName != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, c := range m.Containers {
		set := node.SetID(m.ID, c.Key())
		add(c.Node, set)
		add(c.StreamedTo, set)
		for _, cp := range c.Copies { // replicate.go
			add(cp.Node, set)
		}
		if c.Images != nil && c.Images.Node != "" && filepath.Base(c.Images.Dir) == set {
			add(c.Images.Node, set)
		}
		for _, r := range m.Restores {
			add(r.Targets[c.Key()], set)
		}
	}
	return out
}

// dropSets asks every node to delete the given image sets (in parallel, each bounded
// by the worker timeout). It never fails: it returns the ones dropped (or found gone)
// and one line per set that could not be ("NODE SET: reason").
func (s *Service) dropSets(ctx context.Context, sets []setRef) ([]setRef, []string) {
	t := max(s.cfg.WorkerTimeout, 5*time.Second)
	var (
		mu      sync.Mutex
		dropped []setRef
		left    []string
		wg      sync.WaitGroup
	)
	for _, r := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.dropSet(ctx, r, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				left = append(left, fmt.Sprintf("%s %s: %v", r.node, r.set, err))
				return
			}
			dropped = append(dropped, r)
		}()
	}
	wg.Wait()
	sort.Strings(left)
	for _, l := range left {
		s.log.Warn("image set not collected (delete it by hand, or rm the snapshot again when its node is back)", "set", l)
	}
	return dropped, left
}

// wholeSets counts the image sets (one per container: distinct set names) of which
// every copy in sets was dropped. A set lives on its dumping node and may have copies
// elsewhere (a migration's streamed copy, one a restore sent); rm reports sets, not
// copies, and a copy a restore consumed is already gone.
func wholeSets(sets, dropped []setRef) int {
	ok := map[setRef]bool{}
	for _, r := range dropped {
		ok[r] = true
	}
	all, failed := map[string]bool{}, map[string]bool{}
	for _, r := range sets {
		all[r.set] = true
		if !ok[r] {
			failed[r.set] = true
		}
	}
	return len(all) - len(failed)
}

// dropSet drops set r on its node within timeout, repeating the drop while the node's
// worker is unreachable (node.ErrWorkerUnreachable: killed or restarting, its
// supervisor starting it again within a second or so): a snapshot aborted because its
// worker died otherwise leaves that worker's partial sets behind. A node whose agent
// does not answer at all (no responders) is asked again too while it may only be
// reconnecting: its agent still counts as live, or this coordinator started less than
// one worker timeout ago (its embedded NATS died with the previous one and the agents
// are reconnecting: fault seed 2906, whose restarted coordinator aborted the dead one's
// direct migration 0.6 s after its start and left the sets on the target).
func (s *Service) dropSet(ctx context.Context, r setRef, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := s.dropSetOnce(cctx, r)
		if err == nil || !errors.Is(err, node.ErrWorkerUnreachable) && !(errors.Is(err, errNoAgent) && s.mayReconnect(r.node)) {
			return err
		}
		select {
		case <-cctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// errNoAgent: no agent of the node answered (no responders on its subject).
var errNoAgent = errors.New("its agent does not answer")

// mayReconnect says whether node n's agent may answer soon though it did not now: it
// still counts as live (heard within the worker timeout), or this coordinator started
// less than one worker timeout ago (every live agent is heard within it).
func (s *Service) mayReconnect(n string) bool {
	if _, live := s.live.agent(n); live {
		return true
	}
	return time.Since(s.started) < max(s.cfg.WorkerTimeout, 5*time.Second)
}

func (s *Service) dropSetOnce(cctx context.Context, r setRef) error {
	b, _ := json.Marshal(node.DropRequest{Set: r.set})
	out, err := s.cfg.Bus.Request(cctx, node.DropSubject(r.node), b)
	if err != nil {
		if errors.Is(err, bus.ErrNoResponders) {
			return fmt.Errorf("no live worker on node %s: %w", r.node, errNoAgent)
		}
		return err
	}
	var rep node.DropReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("node %s answered garbage: %w", r.node, err)
	}
	return rep.Err()
}

// collectAborted drops the partial image sets of an aborted snapshot and records the
// ones it could not drop in the manifest's Leftovers.
func (s *Service) collectAborted(ctx context.Context, m *store.Manifest) {
	ctx = context.WithoutCancel(ctx)
	_, left := s.dropSets(ctx, setsOf(m))
	if len(left) == 0 {
		return
	}
	cur, err := s.cfg.Store.Get(ctx, m.ID)
	if err != nil {
		s.log.Warn("cannot record uncollected image sets", "snapshot", m.ID, "err", err)
		return
	}
	cur.Leftovers = left
	if err := s.cfg.Store.Update(ctx, cur); err != nil {
		s.log.Warn("cannot record uncollected image sets", "snapshot", m.ID, "err", err)
		return
	}
	m.Leftovers = left
}

// inUseElsewhere returns the sets of sets that another manifest of the same stack
// still points at (an unchanged container's images reused by a later snapshot).
func (s *Service) inUseElsewhere(ctx context.Context, m *store.Manifest) (map[string]bool, error) {
	ms, err := s.cfg.Store.List(ctx, m.Stack)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, o := range ms {
		if o.ID == m.ID {
			continue
		}
		for _, c := range o.Containers {
			if c.Images != nil {
				used[filepath.Base(c.Images.Dir)] = true
			}
		}
	}
	return used, nil
}

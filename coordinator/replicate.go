package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// MaxReplicas bounds snapshot --replicas (and the label): more copies than this are
// a typo, not a policy.
const MaxReplicas = policy.MaxReplicas

// copyTimeout bounds one copy of an image set to another node (the sender streams
// it, the receiver checks every file's sha256 before it accepts the set).
const copyTimeout = 5 * time.Minute

// copyVerifyTimeout bounds each node's re-hash of one copy (about 1 s per GiB).
const copyVerifyTimeout = 2 * time.Minute

// ErrReplicas is wrapped by the error of a snapshot that committed without all the
// copies it asked for.
var ErrReplicas = errors.New("not every image set has its copies")

// replicate copies every image set of the committed snapshot m to want-1 live nodes
// other than the set's own (spread: each copy goes to a node holding the fewest sets of
// this snapshot so far), records where each copy is (Container.Copies) and returns an
// api error (CodeFailed, wrapping ErrReplicas) naming every set short of copies and
// why. The snapshot stays committed either way: its originals are whole and its cut
// is checked, so a missing copy costs redundancy, not the snapshot; the error and the
// manifest's warnings say so.
func (s *Service) replicate(ctx context.Context, m *store.Manifest, want int) error {
	if want <= 1 || m.State != store.StateCommitted {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	m.Replicas = want
	addr := map[string]string{}
	var nodes []string
	for _, w := range s.live.live() {
		if w.Address != "" {
			addr[w.Node] = w.Address
			nodes = append(nodes, w.Node)
		}
	}
	sort.Strings(nodes)
	held := map[string]int{} // node -> sets of m it holds
	for _, c := range m.Containers {
		if c.Images != nil {
			held[c.Images.Node]++
		}
	}
	type job struct {
		i        int
		home, to string
		set      string
		key      string
		err      error
		ms       int64
	}
	var jobs []*job
	var problems []string
	for i, c := range m.Containers {
		if c.Images == nil {
			continue
		}
		home := c.Images.Node
		have := map[string]bool{home: true}
		for _, cp := range c.Copies {
			have[cp.Node] = true
		}
		cand := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return have[n] })
		need := want - len(have)
		for ; need > 0 && len(cand) > 0; need-- {
			sort.SliceStable(cand, func(a, b int) bool { return held[cand[a]] < held[cand[b]] })
			to := cand[0]
			cand = cand[1:]
			held[to]++
			jobs = append(jobs, &job{i: i, home: home, to: to, set: node.SetID(m.ID, c.Key()), key: c.Key()})
		}
		if need > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d copies: not enough live nodes other than %s with a worker (live: %s): add nodes or lower swarmckpt.replicas",
				c.Key(), want-need, want, home, cmp.Or(strings.Join(nodes, ", "), "none")))
		}
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			jctx, release := s.untilGone(ctx, j.home, j.to) // replicatelive.go
			defer release()
			_, err := s.copyNodes().Send(jctx, j.home, node.SendRequest{Set: j.set, To: addr[j.to]})
			j.ms = time.Since(t0).Milliseconds()
			if cause := context.Cause(jctx); err != nil && cause != nil && ctx.Err() == nil {
				err = cause
			}
			switch {
			case errors.Is(err, node.ErrSetExists):
				// A set of that name is there already (a retry): keep it only if it verifies.
				c := m.Containers[j.i]
				_, verr := restore.Sockets(ctx, s.agentNodes(), copyTimeout, j.set, copyAt(c, j.to))
				if verr != nil {
					j.err = fmt.Errorf("node %s already holds a set %s that does not verify (%v): delete it there", j.to, j.set, verr)
				}
			case errors.Is(err, bus.ErrNoResponders):
				j.err = fmt.Errorf("no live worker on node %s", j.home)
			case err != nil:
				j.err = err
			}
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		if j.err != nil {
			problems = append(problems, fmt.Sprintf("%s: copy %s -> %s failed: %v", j.key, j.home, j.to, j.err))
			continue
		}
		m.Containers[j.i].Copies = append(m.Containers[j.i].Copies, store.Copy{Node: j.to})
		s.event(ctx, api.Event{ID: m.ID, Container: j.key, Node: j.to, Phase: "copied",
			Message: fmt.Sprintf("%s -> %s (sha256 checked on arrival)", j.home, j.to), MS: j.ms})
	}
	sort.Strings(problems)
	for _, p := range problems {
		m.Warnings = append(m.Warnings, "replicas: "+p)
	}
	m.UpdatedAt = time.Now().UTC()
	if err := s.cfg.Store.Update(ctx, m); err != nil {
		s.log.Warn("cannot record the copies of the image sets (rm does not find them: delete them by hand)", "snapshot", m.ID, "err", err)
		problems = append(problems, fmt.Sprintf("the copies could not be recorded (%v): rm and restore do not know them", err))
	}
	if len(problems) > 0 {
		s.log.Warn("snapshot committed without all its copies", "snapshot", m.ID, "replicas", want, "problems", problems)
		return api.Errorf(api.CodeFailed, "snapshot %s committed (its images are whole on their own nodes), but %v (replicas %d):\n  - %s",
			m.ID, ErrReplicas, want, strings.Join(problems, "\n  - "))
	}
	return nil
}

// agentNodes is the node client of the coordinator's own checks of image sets (the
// verifies of copies and of the sets a restore heals): a call whose agent restarts
// or dies while it serves the request fails at once and is asked again of the
// restarted agent (restore.AgentNodes), instead of waiting for its timeout (2 min for
// a verify: fault seed 889, an agent killed 71 ms into a restore, held the restore
// that long before its checkpoint).
func (s *Service) agentNodes() restore.AgentNodes {
	return restore.AgentNodes{Bus: s.cfg.Bus, AddrOf: s.WorkerAddr, Agent: s.live.agent}
}

// copyNodes is agentNodes for copies between nodes, each bounded by copyTimeout: a
// copy whose sending agent is killed and restarted while its worker sends is asked
// again of the restarted agent at once (the send is idempotent: a set already there
// verifies or is node.ErrSetExists), not waited for until copyTimeout (fault seed
// 1905: the snapshot waited 5 min).
func (s *Service) copyNodes() restore.AgentNodes {
	a := s.agentNodes()
	a.Timeout = copyTimeout
	return a
}

// copyAt is c as if its image set were the copy on node n (for Sockets and the
// verify request).
func copyAt(c store.Container, n string) store.Container {
	img := *c.Images
	img.Node = n
	c.Images = &img
	return c
}

// verifyCopies re-checks every copy of m's image sets on its node (inspect --verify)
// and records the outcome in each Copy's Error. It returns one line per bad copy.
func (s *Service) verifyCopies(ctx context.Context, m *store.Manifest) []string {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		bad []string
	)
	for i, c := range m.Containers {
		if c.Images == nil {
			continue
		}
		for k, cp := range c.Copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := restore.Sockets(ctx, s.agentNodes(), copyVerifyTimeout, node.SetID(m.ID, c.Key()), copyAt(c, cp.Node))
				mu.Lock()
				defer mu.Unlock()
				m.Containers[i].Copies[k].Error = ""
				if err != nil {
					m.Containers[i].Copies[k].Error = err.Error()
					bad = append(bad, fmt.Sprintf("%s: copy on %s: %v", c.Key(), cp.Node, err))
				}
			}()
		}
	}
	wg.Wait()
	sort.Strings(bad)
	return bad
}

// healFromCopies runs before a restore reads m's image sets: for every container whose
// set has copies, it verifies the set on its own node; when that one is missing or
// corrupt and the node is live, it replaces it by a copy that verifies (drop, then
// send from the copy's node), so that the restore proceeds as if nothing had
// happened, and says so in the restore's events. When the set's node is down, a copy
// that verifies on a live node becomes the set the restore reads (promoteCopy). It
// returns an error only when neither the original nor any copy can be used.
func (s *Service) healFromCopies(ctx context.Context, m *store.Manifest) error {
	live := map[string]string{}
	for _, w := range s.live.live() {
		live[w.Node] = w.Address
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		problems []string
	)
	for i, c := range m.Containers {
		if c.Images == nil || len(c.Copies) == 0 {
			continue
		}
		home := c.Images.Node
		set := node.SetID(m.ID, c.Key())
		if filepath.Base(c.Images.Dir) != set {
			continue // a set reused from an older snapshot: not this snapshot's to heal
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := live[home]; !ok {
				// Its node is down: the restore reads a copy that verifies instead.
				// Without one, preflight reports the node as without a live worker.
				s.promoteCopy(ctx, m, i, live)
				return
			}
			_, herr := restore.Sockets(ctx, s.agentNodes(), copyVerifyTimeout, set, c)
			if herr == nil {
				return
			}
			var why []string
			for _, cp := range c.Copies {
				a, ok := live[cp.Node]
				if !ok || a == "" {
					why = append(why, "copy on "+cp.Node+": no live worker")
					continue
				}
				if _, err := restore.Sockets(ctx, s.agentNodes(), copyVerifyTimeout, set, copyAt(c, cp.Node)); err != nil {
					why = append(why, fmt.Sprintf("copy on %s: %v", cp.Node, err))
					continue
				}
				if err := s.dropSet(ctx, setRef{home, set}, max(s.cfg.WorkerTimeout, 5*time.Second)); err != nil {
					why = append(why, fmt.Sprintf("cannot delete the bad set on %s: %v", home, err))
					break
				}
				t0 := time.Now()
				if _, err := s.copyNodes().Send(ctx, cp.Node, node.SendRequest{Set: set, To: live[home]}); err != nil {
					why = append(why, fmt.Sprintf("copy %s -> %s: %v", cp.Node, home, err))
					continue
				}
				s.event(ctx, api.Event{ID: m.ID, Container: c.Key(), Node: home, Phase: "used-copy",
					Message: fmt.Sprintf("the image set on %s was unusable (%v): replaced it with the copy from %s (sha256 checked)", home, herr, cp.Node),
					MS:      time.Since(t0).Milliseconds()})
				return
			}
			mu.Lock()
			problems = append(problems, fmt.Sprintf("%s: its image set on %s is unusable (%v), and no copy could replace it: %s", c.Key(), home, herr, strings.Join(why, "; ")))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		sort.Strings(problems)
		return api.Errorf(api.CodeCorrupt, "restore of %s refused, nothing was changed:\n  - %s", m.ID, strings.Join(problems, "\n  - "))
	}
	return nil
}

// promoteCopy makes the first copy of container i's set that verifies on a live node
// the set the restore reads (Images.Node; the old node becomes a copy), and says so.
// Each goroutine of healFromCopies touches its own container only.
func (s *Service) promoteCopy(ctx context.Context, m *store.Manifest, i int, live map[string]string) bool {
	c := m.Containers[i]
	set := node.SetID(m.ID, c.Key())
	for k, cp := range c.Copies {
		if _, ok := live[cp.Node]; !ok {
			continue
		}
		if _, err := restore.Sockets(ctx, s.agentNodes(), copyVerifyTimeout, set, copyAt(c, cp.Node)); err != nil {
			continue
		}
		home := c.Images.Node
		img := *c.Images
		img.Node = cp.Node
		m.Containers[i].Images = &img
		m.Containers[i].Copies = slices.Clone(c.Copies)
		m.Containers[i].Copies[k] = store.Copy{Node: home}
		s.event(ctx, api.Event{ID: m.ID, Container: c.Key(), Node: cp.Node, Phase: "used-copy",
			Message: fmt.Sprintf("node %s, which holds the image set, has no live worker: the restore reads the copy on %s (sha256 checked)", home, cp.Node)})
		return true
	}
	return false
}

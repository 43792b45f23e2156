package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/nodecall"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A task moved by the drain hold comes back as swarm's replacement task, on a new
// address. So that its connections within the stack survive (docs/drain.md "The
// address map of a held task"): its images are restored with an address map (the
// swarm-mode restore's: the wrapper rewrites the sockets), and the stack's tasks
// that stay where they are translate the old address to the new one in their own
// network namespace (node operation xlate, worker/xlate) before the stop is
// released, i.e. before swarm starts the replacement.

// drainReaddress is heldAddresses' answer.
type drainReaddress struct {
	// Map is old IP -> new IP of every task of the stack being stopped on the
	// draining node whose replacement has its address already (the held task's own
	// among them): the held task's images may hold connections to the others, which
	// move too, so all are rewritten consistently.
	Map map[string]string
	// Own are the held task's own old -> new pairs (one per network).
	Own [][2]string
	// Peers are the staying tasks' containers by node: running, of a slot that does
	// not move (now), on any node: also the held task's own node, where a migration
	// moves the tasks one after the other (swarm's update), so that one that moves
	// later carries the translation into its own images. A moved slot's replacement
	// is left out: it was (or will be) restored with the map, its sockets know the
	// new addresses already.
	Peers map[string][]string
	// Missing names the moving tasks of the stack whose replacement has no address
	// yet (their connections to the held task cannot be kept).
	Missing []string
}

func liveDesired(t stack.Task) bool { return t.DesiredState == "running" || t.DesiredState == "ready" }

// heldAddresses computes the held task's readdressing (pure): e the held stop, tasks
// the stack's tasks as the manager lists them.
func heldAddresses(e node.DrainEvent, tasks []stack.Task) drainReaddress {
	out := drainReaddress{Map: map[string]string{}, Peers: map[string][]string{}}
	var ownRepl time.Time // when the held task's replacement was created
	// The moving tasks: on the draining node, being stopped (the held one too).
	moving := map[string]stack.Task{}
	for _, t := range tasks {
		if t.Node == e.Node && t.ContainerID != "" && (!liveDesired(t) || t.ContainerID == e.ContainerID) {
			if cur, ok := moving[t.Key()]; !ok || t.CreatedAt.After(cur.CreatedAt) {
				moving[t.Key()] = t
			}
		}
	}
	keys := make([]string, 0, len(moving))
	for k := range moving {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		old := moving[k]
		var repl *stack.Task
		for i, t := range tasks {
			if t.Key() == k && t.TaskID != old.TaskID && t.Node != "" && t.Node != e.Node && liveDesired(t) &&
				(repl == nil || t.CreatedAt.After(repl.CreatedAt)) {
				repl = &tasks[i]
			}
		}
		pairs := readdress(old, repl)
		if len(pairs) == 0 {
			out.Missing = append(out.Missing, k)
			continue
		}
		for _, p := range pairs {
			out.Map[p[0]] = p[1]
		}
		if old.ContainerID == e.ContainerID {
			out.Own = pairs
			ownRepl = repl.CreatedAt
		}
	}
	for _, t := range tasks {
		if t.Node == "" || t.ContainerID == "" || !liveDesired(t) || t.State != "running" {
			continue
		}
		if old, moves := moving[t.Key()]; moves && !movedBefore(old, t, ownRepl) {
			continue
		}
		out.Peers[t.Node] = append(out.Peers[t.Node], t.ContainerID)
	}
	for n := range out.Peers {
		sort.Strings(out.Peers[n])
	}
	return out
}

// movedBefore reports whether repl, the running replacement of a slot whose task old
// on the held task's node was stopped, was restored before the held task's
// replacement existed (created at ownRepl): it runs since before then, so its map
// could not have the held task's new address, and it is a staying peer that must
// translate (a migration moves a node's tasks one after the other). In a drain every
// replacement is created at once, before any is restored: such a replacement knows
// the new address already and is left out. old still running (being stopped now, in
// the same drain) or times unknown: left out.
func movedBefore(old, repl stack.Task, ownRepl time.Time) bool {
	return old.State != "running" && !repl.StateSince.IsZero() && !ownRepl.IsZero() && repl.StateSince.Before(ownRepl)
}

// readdress pairs old's addresses with repl's on the same networks (nil: no
// replacement, or one without an address on every network of old).
func readdress(old stack.Task, repl *stack.Task) [][2]string {
	if repl == nil || len(old.Addresses) == 0 {
		return nil
	}
	var out [][2]string
	used := map[int]bool{}
	for _, o := range old.Addresses {
		oa, err := netip.ParseAddr(o.IP)
		if err != nil {
			return nil
		}
		found := false
		for i, n := range repl.Addresses {
			na, err := netip.ParseAddr(n.IP)
			if used[i] || err != nil || n.Network != o.Network || na.Is4() != oa.Is4() {
				continue
			}
			used[i], found = true, true
			if na != oa {
				out = append(out, [2]string{oa.String(), na.String()})
			}
			break
		}
		if !found {
			return nil
		}
	}
	return out
}

// translatePeers asks every staying peer's node to translate each of the held task's
// own old addresses to its new one, and records each translation in the store
// (xlates.go). A failure is logged (that peer's connections to the moved task break,
// the move goes on); it returns how many containers translate.
func (d *drainController) translatePeers(ctx context.Context, stackName string, r drainReaddress, timeout time.Duration, log *slog.Logger) int {
	n := 0
	nodes := make([]string, 0, len(r.Peers))
	for nd := range r.Peers {
		nodes = append(nodes, nd)
	}
	sort.Strings(nodes)
	// The nodes at once: one slow to answer (its worker busy) does not use up the
	// others' time within the hold.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range r.Own {
		for _, nd := range nodes {
			ctrs := r.Peers[nd]
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := nodecall.Ask[node.XlateReply](ctx, d.s.cfg.Bus, node.XlateSubject(nd),
					node.XlateRequest{Containers: ctrs, Old: p[0], New: p[1]}, timeout)
				if err != nil {
					log.Warn("drain: the staying peers of a node could not translate the moved task's address: their connections to it will break", "peer_node", nd, "old", p[0], "new", p[1], "err", err)
					return
				}
				for c, why := range rep.Failed {
					log.Warn("drain: a staying peer could not translate the moved task's address: its connections to it will break", "peer_node", nd, "peer", c, "old", p[0], "new", p[1], "err", why)
				}
				mu.Lock()
				n += len(ctrs) - len(rep.Failed)
				mu.Unlock()
				for _, c := range ctrs {
					if _, failed := rep.Failed[c]; !failed {
						// One record at a time: recordChained reads and rewrites the records.
						mu.Lock()
						d.s.recordChained(ctx, store.Translation{Node: nd, Container: c, Old: p[0], New: p[1], Stack: stackName, At: time.Now().UTC()}, log)
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	return n
}

// unlockReplacement waits until swarm's replacement of the held task runs on target
// (restored network-locked) and unlocks it. An unlock that fails (the target's agent
// slow to answer under load) is asked again until drainMapWait: until then the
// replacement cannot answer anyone. If it does not run (or cannot be unlocked)
// within drainMapWait, or ctx ends first (the leader stops), the target's watchdog
// unlocks it at the lock's deadline, drainMapWait after the placement.
func (d *drainController) unlockReplacement(ctx context.Context, e node.DrainEvent, target string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, drainMapWait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	key := fmt.Sprintf("%s.%d", e.Service, e.Slot)
	var lastErr error
	for {
		if tasks, err := d.sw.Tasks(ctx, e.Stack); err == nil {
			for _, tk := range tasks {
				if tk.Key() != key || tk.Node != target || !liveDesired(tk) || tk.State != "running" || tk.ContainerID == "" || tk.ContainerID == e.ContainerID {
					continue
				}
				_, err := nodecall.Ask[node.UnlockReply](ctx, d.s.cfg.Bus, node.UnlockSubject(target),
					node.UnlockRequest{Containers: []string{tk.ContainerID}}, 5*time.Second)
				if err == nil {
					log.Info("drain: replacement restored and unlocked", "target", target, "container", tk.ContainerID)
					return
				}
				if errors.Is(err, node.ErrNotFound) {
					log.Warn("drain: the restored replacement is gone from its node before its unlock", "target", target, "container", tk.ContainerID, "err", err)
					return
				}
				if lastErr == nil {
					log.Warn("drain: could not unlock the restored replacement: asking again", "target", target, "container", tk.ContainerID, "err", err)
				}
				lastErr = err
			}
		}
		select {
		case <-ctx.Done():
			log.Warn("drain: the replacement did not run, or could not be unlocked, in time; its worker's watchdog unlocks it at the lock's deadline",
				"target", target, "wait", drainMapWait, "err", lastErr)
			return
		case <-t.C:
		}
	}
}

// withTranslations adds to m (a held task's address map) the translations its
// container had (old -> new addresses of tasks moved earlier, that it reached through
// its namespace's translation): its replacement's sockets are rewritten to the new
// addresses directly, since the translation stays behind with the old namespace. A
// pair whose old address m maps already is left as m has it.
func withTranslations(m map[string]string, xlated [][2]string) (map[string]string, [][2]string) {
	if len(xlated) == 0 {
		return m, nil
	}
	if m == nil {
		m = map[string]string{}
	}
	var dropped [][2]string
	for _, p := range xlated {
		if _, ok := m[p[0]]; ok {
			continue
		}
		// The translation says how the container's sockets know that peer (p[0]); an
		// entry of the map onto the same new address (the peer's address before it
		// moved, from the stack's task history) is not what they know, and the rewrite
		// accepts one old address per new one: the translation wins.
		for o, n := range m {
			if n == p[1] {
				dropped = append(dropped, [2]string{o, n})
				delete(m, o)
			}
		}
		m[p[0]] = p[1]
	}
	sort.Slice(dropped, func(i, j int) bool { return dropped[i][0] < dropped[j][0] })
	return m, dropped
}

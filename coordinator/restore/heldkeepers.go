package restore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// KindKeepers is the journal kind (store.Operation.Kind) of a drain hold's network
// keepers (KeepNetworks): not a restore, nothing to roll back; a recovery only
// releases them.
const KindKeepers = "keepers"

// A swarm-mode move through the drain hold (`migrate --mode swarm`, `swarmckpt node
// drain`; docs/drain.md "Network keepers of the drain hold") has the nodes that may
// take a moving task's replacement keep the task's networks from before anything
// stops until the replacements run: a node that joins an overlay network when swarm
// assigns it the replacement waits, in libnetwork's join, up to 30 s for every other
// node of the network to answer its bulk sync, and a node being drained may never
// answer (measured: a drain of 31.6 s instead of ~7 s). A keeper on the network (the
// exact-mode keepers of the worker's Prepare, worker/restore keeper*.go) makes that
// join happen before the stop, off the downtime, or not at all.

// KeptTask is a task a drain hold moves, as its keepers need it.
type KeptTask struct {
	// Key is SERVICE.SLOT (service names carry their stack's prefix).
	Key string
	// Image is the task's image: the keepers run it (nothing of it) on the nodes.
	Image string
	// Addresses are the task's addresses, by network: the keepers join those
	// networks and never keep one of these addresses (the staying peers translate
	// the old address to the new one after the move, docs/drain.md).
	Addresses []stack.NetAddr
}

// KeptTasks are the tasks a drain hold moves (the running tasks among tasks that
// moving selects), as KeepNetworks takes them.
func KeptTasks(tasks []stack.Task, moving func(stack.Task) bool) []KeptTask {
	var out []KeptTask
	for _, t := range tasks {
		if t.DesiredState != "running" || t.State != "running" || t.Node == "" || !moving(t) {
			continue
		}
		out = append(out, KeptTask{Key: t.Key(), Image: t.Image, Addresses: t.Addresses})
	}
	return out
}

// KeepName is the name under which a node's prepared hold of a drain hold's keepers
// for task key of operation id is known (never a container's name).
func KeepName(id, key string) string { return "drain-keep." + id + "." + key }

// heldKeepRequests returns, by node, the Prepare request each of nodes gets for the
// tasks of operation id (pure): every node the tasks' keepers (those with an image
// and a network) and every moving task's address, so that no keeper there keeps one.
func heldKeepRequests(id string, tasks []KeptTask, nodes []string) map[string]*node.PreflightRequest {
	var cs []node.PreflightContainer
	var addrs []node.PreflightAddress
	for _, t := range tasks {
		var nets []string
		for _, a := range t.Addresses {
			if a.IP != "" {
				addrs = append(addrs, node.PreflightAddress{Key: t.Key, IP: a.IP, Networks: []string{a.Network}})
			}
			if !slices.Contains(nets, a.Network) {
				nets = append(nets, a.Network)
			}
		}
		if t.Image != "" && len(nets) > 0 {
			cs = append(cs, node.PreflightContainer{Key: t.Key, Name: KeepName(id, t.Key), Image: t.Image})
		}
	}
	if len(cs) == 0 {
		return nil
	}
	reqs := map[string]*node.PreflightRequest{}
	for _, n := range nodes {
		reqs[n] = &node.PreflightRequest{Containers: slices.Clone(cs), Addresses: slices.Clone(addrs)}
	}
	return reqs
}

// KeepNetworks has each of nodes (those that may take a replacement of one of tasks:
// every live node but a drained one, or a migration's --to) keep the networks of
// tasks, the moving tasks of operation id (a swarm-mode migration, a node drain),
// before their stops begin: each node starts a network keeper per network, and
// KeepNetworks waits until every node has them running, at most the prepare wait
// (Config.PrepareWait, 10 s by default; a node late is not waited for further: a
// prepare-late event). The keepers are journaled (KindKeepers) before any node is
// asked, so that a coordinator started after this one died releases them
// (RecoverOperations); a journal that cannot be written starts none. The returned
// release ends them and the journal, once the replacements run or the operation
// ended otherwise; a node that does not answer it, or a coordinator that dies, leaves
// them to the nodes' bound (a prepared hold lasts 4 minutes, a keeper 5).
func (s *Restores) KeepNetworks(ctx context.Context, id string, tasks []KeptTask, nodes []string) (release func()) {
	reqs := heldKeepRequests(id, tasks, nodes)
	if len(reqs) == 0 {
		return func() {}
	}
	keys := make([]string, 0, len(tasks))
	for _, t := range tasks {
		keys = append(keys, t.Key)
	}
	slices.Sort(keys)
	nodes = slices.Sorted(maps.Keys(reqs))
	op := &store.Operation{ID: keepersOpID(id), Kind: KindKeepers, Snapshot: id, Mode: api.ModeSwarm, Step: StepBegun,
		Nodes: nodes, Kept: keys, Coordinator: s.cfg.Name, UpdatedAt: time.Now().UTC()}
	if err := s.cfg.Store.PutOperation(ctx, op); err != nil {
		s.log.Warn("no network keepers for the drain hold: cannot journal them (the replacements' nodes may wait for their network on the downtime)", "operation", id, "err", err)
		return func() {}
	}
	s.prepareNodes(ctx, id, reqs, "the drain hold", "their tasks' replacements may wait for their networks")
	var once sync.Once
	return func() {
		once.Do(func() {
			s.releaseKept(ctx, op)
		})
	}
}

// keepersOpID is the journal ID of operation id's keepers.
func keepersOpID(id string) string { return "keepers-" + id }

// releaseKept ends the keepers journaled as op (KeepNetworks) on its live nodes, each
// in parallel, at most releaseTimeout, then deletes op: the nodes that do not answer
// end them by themselves within minutes (logged).
func (s *Restores) releaseKept(ctx context.Context, op *store.Operation) {
	ctx = context.WithoutCancel(ctx)
	cs := make([]node.PreflightContainer, 0, len(op.Kept))
	for _, k := range op.Kept {
		cs = append(cs, node.PreflightContainer{Key: k, Name: KeepName(op.Snapshot, k)})
	}
	byNode := map[string][]node.PreflightContainer{}
	for _, n := range op.Nodes {
		byNode[n] = cs
	}
	s.releaseKeepers(ctx, byNode, "of the drain hold", "operation", op.Snapshot)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.DeleteOperation(dctx, op.ID); err != nil {
		s.log.Warn("cannot delete the journal of the drain hold's network keepers (the next coordinator releases them again)", "operation", op.Snapshot, "err", err)
	}
}

// recoverKept releases the keepers a dead coordinator's drain hold journaled (op,
// KindKeepers): its operation is gone with it.
func (s *Restores) recoverKept(ctx context.Context, op *store.Operation) error {
	s.log.Warn("releasing the network keepers of a drain hold a previous coordinator did not finish", "operation", op.Snapshot, "nodes", op.Nodes)
	s.releaseKept(ctx, op)
	if ctx.Err() != nil {
		return fmt.Errorf("keepers of %s: %w", op.Snapshot, ctx.Err())
	}
	return nil
}

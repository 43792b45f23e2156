package restore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// releaseTimeout bounds each node's answer to a release of prepared holds.
const releaseTimeout = 10 * time.Second

// prepareRequests returns, by node, what a partial migration of st's containers
// (snapshot id) onto plan has each node prepare (node.PreflightRequest.Prepare; the
// caller sets Prepare and Ready): each target the containers it restores, each source
// the containers that leave it, under the same names (their put-back's, should the
// migration roll back). Containers without an image or networks need no keeper.
func prepareRequests(id string, st *stack.Stack, plan map[string]string) map[string]*node.PreflightRequest {
	reqs := map[string]*node.PreflightRequest{}
	add := func(n string, c stack.Container) {
		if reqs[n] == nil {
			reqs[n] = &node.PreflightRequest{}
		}
		r := reqs[n]
		r.Containers = append(r.Containers, node.PreflightContainer{Key: c.Key(), Name: ContainerName(id, store.Container{Service: c.Service, Slot: c.Slot}), Image: c.Image})
		for _, ip := range c.IPs {
			r.Addresses = append(r.Addresses, node.PreflightAddress{Key: c.Key(), IP: ip, Networks: c.Networks})
		}
	}
	for _, c := range st.Containers {
		t, ok := plan[c.Key()]
		if !ok || c.Image == "" || len(c.Networks) == 0 {
			continue
		}
		add(t, c)
		if c.Node != "" && c.Node != t {
			add(c.Node, c)
		}
	}
	return reqs
}

// movingOf returns the containers of st that plan moves, as a manifest records them
// (service, slot, node).
func movingOf(st *stack.Stack, plan map[string]string) []store.Container {
	var out []store.Container
	for _, c := range st.Containers {
		if _, ok := plan[c.Key()]; ok {
			out = append(out, store.Container{Service: c.Service, Slot: c.Slot, Node: c.Node})
		}
	}
	return out
}

// releasePrepared ends what prepareEarly had the nodes of a partial migration prepare
// (snapshot id; moving, the moved containers with their original nodes; plan, their
// targets), once it is over: committed, rolled back or refused (node.PreflightRequest
// .Release, each node in parallel, each at most releaseTimeout). Their keepers stop
// (a keeper a restore still holds stays until that restore ends). A node that does not
// answer keeps its holds until their bound (a few minutes): logged, nothing else
// depends on it.
func (s *Restores) releasePrepared(ctx context.Context, id string, moving []store.Container, plan map[string]string) {
	ctx = context.WithoutCancel(ctx)
	byNode := map[string][]node.PreflightContainer{}
	add := func(n string, c store.Container) {
		name := ContainerName(id, c)
		if n != "" && !slices.ContainsFunc(byNode[n], func(pc node.PreflightContainer) bool { return pc.Name == name }) {
			byNode[n] = append(byNode[n], node.PreflightContainer{Key: c.Key(), Name: name})
		}
	}
	for _, c := range moving {
		add(c.Node, c)
		add(plan[c.Key()], c)
	}
	s.releaseKeepers(ctx, byNode, "prepared for the migration", "snapshot", id)
}

// releaseKeepers asks each live node of byNode to end its keepers cs
// (node.PreflightRequest.Release), in parallel, each at most releaseTimeout; what
// names them in the logs (with the key and id). A node without a live worker, or that
// does not answer, ends them by itself within minutes (logged).
func (s *Restores) releaseKeepers(ctx context.Context, byNode map[string][]node.PreflightContainer, what, key, id string) {
	live := map[string]bool{}
	for _, w := range s.live() {
		live[w.Node] = true
	}
	var wg sync.WaitGroup
	for n, cs := range byNode {
		if !live[n] {
			s.log.Info("node without a live worker: its network keepers "+what+" end by themselves", key, id, "node", n)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, releaseTimeout)
			defer cancel()
			rep, err := s.nodes.Preflight(cctx, n, node.PreflightRequest{Release: true, Containers: cs})
			if err == nil && rep.Error != "" {
				err = errors.New(rep.Error)
			}
			if err != nil {
				s.log.Warn("cannot release the network keepers "+what+" (they end by themselves within minutes)", key, id, "node", n, "err", err)
			}
		}()
	}
	wg.Wait()
}

// freeAddresses has every live node's network keepers give up the addresses of m's
// containers before they are restored (a put-back: the originals were stopped or
// removed, their addresses free): a keeper has no fixed address and one started
// after that stop or removal, on any node, can have been given one, which it would
// hold against that container's restore for as long as it lives (fault seed 1234).
// It is a Prepare without containers (node.PreflightRequest: the node starts nothing,
// its keepers give up Addresses and no keeper it starts soon keeps one); each node
// in parallel, at most releaseTimeout; a node that fails is logged, nothing more.
func (s *Restores) freeAddresses(ctx context.Context, m *store.Manifest) {
	var addrs []node.PreflightAddress
	for _, c := range m.Containers {
		for _, ip := range c.IPs {
			addrs = append(addrs, node.PreflightAddress{Key: c.Key(), IP: ip, Networks: c.Networks})
		}
	}
	if len(addrs) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range s.live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, releaseTimeout)
			defer cancel()
			rep, err := s.nodes.Preflight(cctx, w.Node, node.PreflightRequest{Prepare: true, Addresses: addrs})
			if err == nil && rep.Error != "" {
				err = errors.New(rep.Error)
			}
			if err != nil {
				s.log.Warn("put back: the node's network keepers may hold an address of the stack", "snapshot", m.ID, "node", w.Node, "err", err)
			}
		}()
	}
	wg.Wait()
}

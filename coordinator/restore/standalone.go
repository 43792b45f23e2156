package restore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A stack restored in exact mode runs as standalone containers (its services at 0
// replicas), which the swarm manager does not see. Every node's agent lists the ones on
// its node (node.StandaloneSubject), so that the stack can be snapshotted,
// migrated and restored again (docs/restore.md "Restoring a restored stack").

// LabelSlot, when a restored container carries it, is the slot it was restored as;
// without it the slot is read from the container's name, which AgentRestorer makes
// SERVICE-SLOT-SNAPSHOT (the dots of SERVICE.SLOT as dashes).
const LabelSlot = "io.swarmckpt.slot"

// standaloneTimeout bounds each node's answer.
const standaloneTimeout = 15 * time.Second

// listStandalone asks every live node's agent for the containers restored for stack's
// services. A node whose agent predates the subject (no responder) is skipped with a
// warning in the log; any other failure is an error, since a node that did not answer
// may run part of the stack.
func (s *Restores) listStandalone(ctx context.Context, stackName string) (map[string][]node.Standalone, error) {
	workers := s.live()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = map[string][]node.Standalone{}
		errs []error
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, standaloneTimeout)
			defer cancel()
			list, err := s.nodes.Standalone(cctx, w.Node, stackName)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, bus.ErrNoResponders):
				s.log.Warn("node agent does not list restored containers (older version): a restored stack's containers on it are not found", "node", w.Node)
			case err != nil:
				errs = append(errs, fmt.Errorf("node %s: list the containers restored for stack %s: %w (retry when its worker answers)", w.Node, stackName, err))
			case len(list) > 0:
				out[w.Node] = list
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// StandaloneContainers implements stack.StandaloneFunc: the containers restored for
// stack's services, on every live node, each as the SERVICE.SLOT it was restored as,
// with its State (stack.BuildWith counts the running ones).
func (s *Restores) StandaloneContainers(ctx context.Context, stackName string) ([]stack.Container, error) {
	byNode, err := s.listStandalone(ctx, stackName)
	if err != nil {
		return nil, err
	}
	var out []stack.Container
	for node, list := range byNode {
		for _, sc := range list {
			out = append(out, StandaloneContainer(node, sc))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Key() < out[j].Key() || out[i].Key() == out[j].Key() && out[i].Node < out[j].Node
	})
	return out, nil
}

// StandaloneContainer turns a node's restored container into the stack container it
// stands for: service from its label, slot from LabelSlot or its name (0 if neither
// tells), addresses and aliases from its endpoints.
func StandaloneContainer(nodeName string, sc node.Standalone) stack.Container {
	c := stack.Container{Service: sc.Service, Slot: standaloneSlot(sc), Node: nodeName, ContainerID: sc.ID, Image: sc.Image, State: sc.State}
	if sc.Running {
		c.State = "running"
	} else if c.State == "" || c.State == "running" {
		c.State = "not running" // paused or restarting
	}
	for _, n := range sc.Networks {
		c.Networks = append(c.Networks, n.Name)
		for _, a := range []string{n.IPv4, n.IPv6} {
			if ip, err := netip.ParseAddr(a); err == nil {
				c.IPs = append(c.IPs, ip.String())
			}
		}
		for _, a := range n.Aliases {
			// Docker adds the container's short ID as an alias: it names this
			// container, not the service.
			if a == "" || len(a) >= 12 && strings.HasPrefix(sc.ID, a) {
				continue
			}
			if c.Aliases == nil {
				c.Aliases = map[string][]string{}
			}
			c.Aliases[n.Name] = append(c.Aliases[n.Name], a)
		}
	}
	return c
}

func standaloneSlot(sc node.Standalone) int {
	if v, ok := sc.Labels[LabelSlot]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	rest, ok := strings.CutPrefix(sc.Name, strings.ReplaceAll(sc.Service, ".", "-")+"-")
	if !ok {
		return 0
	}
	digits, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// removeStandalone force-removes every container restored for stack's services on
// every live node (running or not: a stopped one keeps its name), before a restore
// brings the stack back: the part of "stop what runs" the swarm manager cannot do. It
// returns how many it removed.
func (s *Restores) removeStandalone(ctx context.Context, m *store.Manifest) (int, error) {
	return s.removeStandaloneExcept(ctx, m, nil)
}

// removeStandaloneExcept is removeStandalone that leaves the containers keep names
// (ids or names): originals a put-back keeps (originals.go).
func (s *Restores) removeStandaloneExcept(ctx context.Context, m *store.Manifest, keep map[string]bool) (int, error) {
	byNode, err := s.listStandalone(ctx, m.Stack)
	if err != nil {
		return 0, stopWhatRunsErr(m, err)
	}
	if len(keep) > 0 {
		for n, list := range byNode {
			byNode[n] = slices.DeleteFunc(list, func(sc node.Standalone) bool { return keep[sc.ID] || keep[sc.Name] })
		}
	}
	return s.removeListed(ctx, m, byNode)
}

// stopWhatRunsErr is the error of a failed "stop what runs" step of a restore of m.
func stopWhatRunsErr(m *store.Manifest, err error) error {
	return api.Errorf(api.CodeFailed, "stop what runs of stack %s before restoring: %v", m.Stack, err)
}

// standaloneReplicas counts, per service, the running standalone containers in byNode
// of the services not in stopped (those the scale to 0 found at 0 replicas): the
// replicas a stack restored earlier in exact mode had.
func standaloneReplicas(byNode map[string][]node.Standalone, stopped map[string]uint64) map[string]uint64 {
	running := map[string]uint64{}
	for _, list := range byNode {
		for _, sc := range list {
			if sc.Running && stopped[sc.Service] == 0 {
				running[sc.Service]++
			}
		}
	}
	return running
}

// removeListed force-removes the standalone containers listStandalone found (byNode)
// through their nodes' agents and returns how many it removed.
func (s *Restores) removeListed(ctx context.Context, m *store.Manifest, byNode map[string][]node.Standalone) (n int, err error) {
	var errs []error
	for nodeName, list := range byNode {
		ids := make([]string, 0, len(list))
		for _, sc := range list {
			ids = append(ids, sc.ID)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.nodes.Remove(cctx, nodeName, ids)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: remove the containers of an earlier restore of %s (%s): %w (remove them by hand: docker rm -f)", nodeName, m.Stack, strings.Join(ids, " "), err))
			continue
		}
		n += len(ids)
	}
	if n > 0 {
		s.event(ctx, api.Event{ID: m.ID, Phase: "stopping", Message: fmt.Sprintf("removed %d standalone containers of an earlier restore of stack %s", n, m.Stack)})
	}
	if err := errors.Join(errs...); err != nil {
		return n, stopWhatRunsErr(m, err)
	}
	return n, nil
}

package nodeloss

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// ErrNoSnapshot is wrapped by Pick's error when no snapshot of the stack can be
// restored from the live nodes.
var ErrNoSnapshot = errors.New("nodeloss: no snapshot readable from the live nodes")

// readableOn lists the live nodes that hold a readable set of c: its original
// (Images.Node, else c.Node) and each copy no check found bad.
func readableOn(c store.Container, live map[string]bool) []string {
	var out []string
	home := c.Node
	if c.Images != nil && c.Images.Node != "" {
		home = c.Images.Node
	}
	if live[home] {
		out = append(out, home)
	}
	for _, cp := range c.Copies {
		if cp.Error == "" && live[cp.Node] && cp.Node != home {
			out = append(out, cp.Node)
		}
	}
	return out
}

// Pick chooses the snapshot of a stack to restore after a node loss: the newest
// committed one (of ms, any order) every container of which has a set readable on a
// live node (its original or a copy: swarmckpt.replicas). The error, wrapping
// ErrNoSnapshot, says per candidate why it was passed over.
func Pick(ms []*store.Manifest, live map[string]bool) (*store.Manifest, error) {
	cands := make([]*store.Manifest, 0, len(ms))
	for _, m := range ms {
		if m.State == store.StateCommitted && len(m.Containers) > 0 {
			cands = append(cands, m)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].CreatedAt.After(cands[j].CreatedAt) })
	var why []string
	for _, m := range cands {
		var missing []string
		for _, c := range m.Containers {
			if len(readableOn(c, live)) == 0 {
				missing = append(missing, c.Key())
			}
		}
		if len(missing) == 0 {
			return m, nil
		}
		why = append(why, fmt.Sprintf("%s: no set of %s on a live node", m.ID, strings.Join(missing, ", ")))
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: the stack has no committed snapshot", ErrNoSnapshot)
	}
	return nil, fmt.Errorf("%w (%s): give the stack swarmckpt.replicas of 2 or more so that every set has a copy on another node", ErrNoSnapshot, strings.Join(why, "; "))
}

// Ran says whether any of the stack's containers (of the manifest m, or running now:
// nodes) was on node n.
func Ran(m *store.Manifest, running []string, n string) bool {
	for _, r := range running {
		if r == n {
			return true
		}
	}
	if m == nil {
		return false
	}
	for _, c := range m.Containers {
		if c.Node == n {
			return true
		}
	}
	return false
}

// Targets places every container of m for an exact-mode restore after a node loss:
// on its own node when that node is live; else on a live node that holds a set of it
// (no transfer needed), the least loaded of those; else on the least loaded live node.
// Ties go to the node that sorts first. live must not be empty.
func Targets(m *store.Manifest, live []string) (map[string]string, error) {
	if len(live) == 0 {
		return nil, fmt.Errorf("nodeloss: no live node to restore stack %s on", m.Stack)
	}
	isLive := map[string]bool{}
	for _, n := range live {
		isLive[n] = true
	}
	nodes := append([]string(nil), live...)
	sort.Strings(nodes)
	load := map[string]int{}
	out := map[string]string{}
	var moved []store.Container
	for _, c := range m.Containers {
		if isLive[c.Node] {
			out[c.Key()] = c.Node
			load[c.Node]++
			continue
		}
		moved = append(moved, c)
	}
	least := func(among []string) string {
		best := ""
		for _, n := range among {
			if best == "" || load[n] < load[best] {
				best = n
			}
		}
		return best
	}
	for _, c := range moved {
		on := readableOn(c, isLive)
		sort.Strings(on)
		n := least(on)
		if n == "" {
			n = least(nodes)
		}
		out[c.Key()] = n
		load[n]++
	}
	return out, nil
}

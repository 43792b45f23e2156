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

// modeSwarm is coordinator/api's ModeSwarm.
const modeSwarm = "swarm"

// Mode is the mode a stack whose policy mode is policyMode ("" is exact) is restored
// in after a node loss, and, when that is not its own, why. An exact-mode restore
// puts every container back on its address, and the swarm manager keeps the
// addresses of the lost node's containers allocated to that node's tasks (its
// network attachments) until the node comes back, for up to 24 hours: no
// exact-mode restore of them can attach (seen in the lab: "could not allocate IP
// from IPAM: Address already in use"). So a stack in exact mode is restored in
// swarm mode, with new addresses and its connections kept by rewriting both ends.
func Mode(policyMode string) (mode, why string) {
	if policyMode == modeSwarm {
		return modeSwarm, ""
	}
	return modeSwarm, "the stack's mode is exact, but the swarm manager keeps the lost node's addresses allocated to its tasks until it comes back, so its containers cannot get them back: restored in swarm mode (new addresses, the connections kept by rewriting both ends)"
}

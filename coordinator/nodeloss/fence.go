package nodeloss

import (
	"sort"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Fence is the record written before a lost node's stack is restored elsewhere
// (stored with the stack's policy record in etcd): when the node comes back, the
// containers of the stack it still has are not the stack any more and must go.
type Fence = store.Fence

// Container is one container of the fenced stack found on the node that came back.
type Container struct {
	ID string
	// Created is when Docker created it (zero: unknown).
	Created time.Time
}

// Victims returns the containers (sorted ids) that a node coming back with found
// (the stack's standalone containers on it) must remove under fence f: every one
// created before the node was declared lost (or of unknown creation time) and not a
// container the restore itself created. A container created after f.At on that node
// was put there by a later operation, not by the node's old life, and stays.
func Victims(f Fence, found []Container) []string {
	keep := map[string]bool{}
	for _, id := range f.Keep {
		keep[id] = true
	}
	var out []string
	for _, c := range found {
		if keep[c.ID] {
			continue
		}
		if !c.Created.IsZero() && c.Created.After(f.At) {
			continue
		}
		out = append(out, c.ID)
	}
	sort.Strings(out)
	return out
}

// Pending returns the fences of node n among fs, and the others.
func Pending(fs []Fence, n string) (mine, others []Fence) {
	for _, f := range fs {
		if f.Node == n {
			mine = append(mine, f)
		} else {
			others = append(others, f)
		}
	}
	return mine, others
}

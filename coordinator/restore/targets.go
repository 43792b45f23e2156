package restore

import (
	"fmt"
	"sort"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// PlanTargets picks a node for every container: the explicit ones, else its original
// node when onOriginal, else a node other than its original one (round robin over
// nodes). nodes are the nodes with a live worker.
func PlanTargets(m *store.Manifest, explicit map[string]string, nodes []string, onOriginal bool) (map[string]string, error) {
	keys := map[string]bool{}
	for _, c := range m.Containers {
		keys[c.Key()] = true
	}
	for k := range explicit {
		if !keys[k] {
			return nil, api.Errorf(api.CodeBadRequest, "--node %s=...: snapshot %s has no container %s (it has %v)", k, m.ID, k, sortedKeys(keys))
		}
	}
	live := map[string]bool{}
	for _, n := range nodes {
		live[n] = true
	}
	sorted := append([]string(nil), nodes...)
	sort.Strings(sorted)
	out := map[string]string{}
	next := 0
	for _, c := range m.Containers {
		if n, ok := explicit[c.Key()]; ok {
			if !live[n] {
				return nil, api.Errorf(api.CodeNoWorker, "target node %s for %s has no live worker (live: %v)", n, c.Key(), sorted)
			}
			out[c.Key()] = n
			continue
		}
		if onOriginal {
			if !live[c.Node] {
				return nil, api.Errorf(api.CodeNoWorker, "%s goes back to its original node %s (--on-original), which has no live worker (live: %v): start its worker and agent, or map it elsewhere with --node %s=NODE",
					c.Key(), c.Node, sorted, c.Key())
			}
			out[c.Key()] = c.Node
			continue
		}
		picked := ""
		for i := 0; i < len(sorted); i++ {
			n := sorted[(next+i)%len(sorted)]
			if n != c.Node {
				picked = n
				next = (next + i + 1) % len(sorted)
				break
			}
		}
		if picked == "" {
			return nil, api.Errorf(api.CodeBadRequest,
				"not enough nodes to restore %s on a node other than its original %s (live workers: %v): add a node, or map it with --node %s=NODE",
				c.Key(), c.Node, sorted, c.Key())
		}
		out[c.Key()] = picked
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DescribeTargets is "KEY->NODE, ..." in key order.
func DescribeTargets(t map[string]string) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s->%s", k, t[k])
	}
	return s
}

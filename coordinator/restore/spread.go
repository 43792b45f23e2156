package restore

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// Placed is a container of a stack where it runs (or is to run): what SpreadTargets
// weighs.
type Placed struct {
	Key     string // SERVICE.SLOT
	Service string
	Node    string
}

// SpreadTargets chooses the target node of every moving container of a partial
// migration (pure). nodes are the candidates (live, the node left by --from taken
// out; for --to only that node); staying are the stack's containers that do not
// move; constraints are each service's own placement constraints (its hostname
// constraints, node.hostname==N / !=N, are honoured: stack.EligibleNodes; others
// filter nothing here). Each moving container, in key order, goes to the eligible
// node that holds the fewest containers of its own service (a replica is not put
// beside another replica, a primary not beside its replica, while a node without
// one is free), then the fewest of the stack, then the first by name; the
// containers already placed count. A service that no candidate allows is an error
// (CodeBadRequest) naming it, its constraints and the candidates: nothing moves.
func SpreadTargets(moving, staying []Placed, nodes []string, constraints map[string][]string) (map[string]string, error) {
	nodes = slices.Clone(nodes)
	sort.Strings(nodes)
	sameSvc := map[[2]string]int{} // service, node -> containers
	total := map[string]int{}      // node -> containers of the stack
	for _, p := range staying {
		sameSvc[[2]string{p.Service, p.Node}]++
		total[p.Node]++
	}
	moving = slices.Clone(moving)
	sort.Slice(moving, func(i, j int) bool { return moving[i].Key < moving[j].Key })
	out := map[string]string{}
	var problems []string
	for _, m := range moving {
		eligible := stack.EligibleNodes(nodes, constraints[m.Service])
		if len(eligible) == 0 {
			problems = append(problems, fmt.Sprintf("%s: its placement constraints %v leave none of %v", m.Key, constraints[m.Service], nodes))
			continue
		}
		best := eligible[0]
		for _, n := range eligible[1:] {
			a, b := sameSvc[[2]string{m.Service, n}], sameSvc[[2]string{m.Service, best}]
			if a < b || a == b && total[n] < total[best] {
				best = n
			}
		}
		out[m.Key] = best
		sameSvc[[2]string{m.Service, best}]++
		total[best]++
	}
	if len(problems) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "migration refused, nothing was changed: no target node for %s; free a node the service may run on, or change its constraints (docker service update --constraint-rm ...)",
			strings.Join(problems, "; "))
	}
	return out, nil
}

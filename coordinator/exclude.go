package coordinator

import (
	"maps"
	"slices"
	"strings"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// excludeServices leaves the containers of the services named in exclude
// (swarmckpt.exclude) out of st, and returns what is left with how many containers
// each excluded service ran. A stack with nothing left to snapshot is refused
// (CodeBadRequest).
func excludeServices(st *stack.Stack, exclude []string) (*stack.Stack, map[string]int, error) {
	if len(exclude) == 0 {
		return st, nil, nil
	}
	out := *st
	out.Containers = nil
	excluded := map[string]int{}
	for _, svc := range exclude {
		excluded[svc] = 0
	}
	for _, c := range st.Containers {
		if _, ok := excluded[c.Service]; ok {
			excluded[c.Service]++
			continue
		}
		out.Containers = append(out.Containers, c)
	}
	if len(out.Containers) == 0 {
		return nil, nil, api.Errorf(api.CodeBadRequest, "stack %s: every running container belongs to an excluded service (%s, swarmckpt.exclude): nothing to snapshot; remove the label from a service that holds state",
			st.Name, strings.Join(slices.Sorted(maps.Keys(excluded)), ", "))
	}
	return &out, excluded, nil
}

// onlyContainers keeps of st the containers named in only (SERVICE.SLOT; nil: all),
// a partial migration's moving containers. A name st does not run is an error
// (CodeFailed: the stack changed since the migration chose them).
func onlyContainers(st *stack.Stack, only []string) (*stack.Stack, error) {
	if len(only) == 0 {
		return st, nil
	}
	out := *st
	out.Containers = nil
	for _, c := range st.Containers {
		if slices.Contains(only, c.Key()) {
			out.Containers = append(out.Containers, c)
		}
	}
	if len(out.Containers) != len(only) {
		var found []string
		for _, c := range out.Containers {
			found = append(found, c.Key())
		}
		return nil, api.Errorf(api.CodeFailed, "stack %s: the containers to move (%s) are not all running any more (found %s): the stack changed; try again",
			st.Name, strings.Join(only, ", "), strings.Join(found, ", "))
	}
	return &out, nil
}

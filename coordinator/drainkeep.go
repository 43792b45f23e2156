package coordinator

import (
	"context"
	"slices"

	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// keepCandidates returns the nodes that may take a replacement of a task moved off
// from (every live node but from, sorted), or, with to, to alone (pure).
func keepCandidates(live []string, from, to string) []string {
	if to != "" {
		return []string{to}
	}
	var out []string
	for _, n := range live {
		if n != from && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// keepNetworks has the nodes that may take the replacements of the tasks of stacks
// that moving selects (off from, or onto to) keep those tasks' networks before their
// stops begin (restore.Restores.KeepNetworks: keepers, a bounded wait, a journal),
// for operation id. The returned release ends them: called once the replacements run
// or the operation ended otherwise.
func (s *Service) keepNetworks(ctx context.Context, sw DrainSwarm, id string, stacks []string, moving func(stack.Task) bool, from, to string) (release func()) {
	var kept []restore.KeptTask
	for _, st := range stacks {
		tasks, err := sw.Tasks(ctx, st)
		if err != nil {
			s.log.Warn("drain hold: no network keepers for a stack whose tasks cannot be listed", "stack", st, "err", err)
			continue
		}
		kept = append(kept, restore.KeptTasks(tasks, moving)...)
	}
	var live []string
	for _, w := range s.live.live() {
		live = append(live, w.Node)
	}
	return s.restores.KeepNetworks(ctx, id, kept, keepCandidates(live, from, to))
}

package restore

import (
	"context"
	"fmt"
	"slices"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// LabelReader lists the stacks' services with their labels (stack.Docker,
// stack.FakeLabels): a
// migration without --copy takes the stack's swarmckpt.migration label.
type LabelReader interface {
	ServiceLabels(ctx context.Context) ([]stack.ServiceLabels, error)
}

// migrationCopy resolves the copy mode of req: --copy as given, else the stack's
// swarmckpt.migration label (cold is streamed), else streamed. explicit says whether
// the user chose it (--copy): a label's choice that cannot apply (direct in swarm mode)
// falls back to streamed, an explicit one is refused. Post-copy is checked against
// the nodes in streamTo (copyGate).
func (s *Restores) migrationCopy(ctx context.Context, req api.MigrateRequest) (mode string, explicit bool, err error) {
	mode, explicit = req.Copy, req.Copy != ""
	if !explicit {
		mode = s.labelCopy(ctx, req.Stack)
	}
	switch mode {
	case "", "cold", api.CopyStreamed:
		return api.CopyStreamed, explicit, nil
	case api.CopyDirect:
		if req.Mode == api.ModeSwarm && s.movesHeld(ctx, req) {
			// Only the moving tasks, through the drain hold: each held stop is dumped
			// straight into its replacement's node (moveHeld checks the nodes).
			return api.CopyDirect, explicit, nil
		}
		if req.Mode == api.ModeSwarm {
			// A whole-stack swarm-mode migration places the tasks itself (with --from:
			// anywhere but NODE) and restores sets as copies: not yet for a set whose
			// only copy is the target's.
			if explicit {
				return "", true, api.Errorf(api.CodeBadRequest, "migrate --copy direct --mode swarm refused, nothing was changed: direct copies need --mode exact, or in swarm mode a migration of only the moving tasks (without --whole-stack: in a whole-stack swarm-mode restore the set's only copy would be used up by the restore); use --mode exact, drop --whole-stack, or use --copy streamed")
			}
			return api.CopyStreamed, false, nil
		}
		return api.CopyDirect, explicit, nil
	case api.CopyPostCopy:
		if req.Mode == api.ModeSwarm && s.movesHeld(ctx, req) {
			return api.CopyPostCopy, explicit, nil // moveHeld refuses it, or a label's falls back
		}
		if req.Mode == api.ModeSwarm {
			// As for direct: the restore would depend on a source swarm ends.
			if explicit {
				return "", true, api.Errorf(api.CodeBadRequest, "migrate --copy post-copy --mode swarm refused, nothing was changed: post-copy needs --mode exact (the restored container keeps fetching its pages from the source, which swarm mode's stop ends); use --mode exact, or --copy streamed")
			}
			return api.CopyStreamed, false, nil
		}
		// Every node involved must announce it (copyNeeds; streamTo, once the moving
		// containers and their targets are known); a label's choice falls back to
		// direct, or streamed, there.
		return api.CopyPostCopy, explicit, nil
	case api.CopyPreCopy:
		if req.Mode == api.ModeSwarm {
			// Swarm mode places the set for swarm's replacement task, whose runtime
			// wrapper does not link a pre-dump chain.
			if explicit {
				return "", true, api.Errorf(api.CodeBadRequest, "migrate --copy pre-copy --mode swarm refused, nothing was changed: pre-copy needs --mode exact (a set placed for swarm's replacement task cannot chain its pre-dumps yet); use --mode exact, or --copy streamed")
			}
			return api.CopyStreamed, false, nil
		}
		// Every node that may dump a moving container must track soft-dirty pages:
		// refused before anything is touched (a label's choice falls back to
		// streamed). streamTo checks the nodes that do dump one once they are known.
		if err := s.preCopyGate(req); err != nil {
			if explicit {
				return "", true, err
			}
			s.event(ctx, api.Event{ID: req.ID, Phase: "warning", Message: fmt.Sprintf("the stack's swarmckpt.migration label asks for pre-copy, which cannot apply (%v): migrating streamed", err)})
			return api.CopyStreamed, false, nil
		}
		return api.CopyPreCopy, explicit, nil
	default:
		return "", explicit, api.Errorf(api.CodeBadRequest, "migrate refused, nothing was changed: unknown copy mode %q: use %s or %s (%s and %s only where every node involved announces them: 'swarmckpt status' FEATURES)", mode, api.CopyStreamed, api.CopyDirect, api.CopyPostCopy, api.CopyPreCopy)
	}
}

// preCopyGate refuses pre-copy of req unless every live node that may dump a moving
// container announces soft-dirty tracking (node.FeaturePreCopy: its kernel has
// CONFIG_MEM_SOFT_DIRTY): --from NODE, or (--to NODE) every live node but NODE. Before
// the snapshot the moving containers are not resolved yet; streamTo checks the nodes
// that do dump one (copyGate). The error is CodeBadRequest (exit 2), naming the node.
func (s *Restores) preCopyGate(req api.MigrateRequest) error {
	live := s.live()
	var nodes []string
	for _, w := range live {
		if req.From != "" && w.Node == req.From || req.From == "" && w.Node != req.To {
			nodes = append(nodes, w.Node)
		}
	}
	if req.From != "" && len(nodes) == 0 {
		nodes = []string{req.From} // no live worker: announces nothing
	}
	slices.Sort(nodes)
	if n, f, missing := missingFeature(live, nodes, []string{node.FeaturePreCopy}); missing {
		return api.Errorf(api.CodeBadRequest, "migrate --copy pre-copy refused, nothing was changed: node %s does not announce the worker feature %q: %s", n, f, featureWhy(f, n))
	}
	return nil
}

// movesHeld reports whether migration req moves only the moving tasks through the
// drain hold (Config.MoveHeld): swarm mode without --whole-stack, on a stack of swarm
// tasks.
func (s *Restores) movesHeld(ctx context.Context, req api.MigrateRequest) bool {
	return !req.WholeStack && req.Mode == api.ModeSwarm && s.cfg.MoveHeld != nil && !s.hasStandalone(ctx, req.Stack)
}

// heldDirectGate refuses a direct copy of the moving tasks of req (a migration
// through the drain hold) unless every live node that may hold a moving task's stop
// (--from NODE, or every live node but --to NODE) and every node swarm may place a
// replacement on (every live node but --from NODE, or --to NODE) announces
// node.FeatureDrainDirect. The error is CodeBadRequest, naming the node.
func (s *Restores) heldDirectGate(req api.MigrateRequest) error {
	live := s.live()
	var sources, targets []string
	for _, w := range live {
		if req.From != "" {
			if w.Node == req.From {
				sources = append(sources, w.Node)
			} else {
				targets = append(targets, w.Node)
			}
			continue
		}
		if w.Node != req.To {
			sources = append(sources, w.Node)
		}
	}
	if req.From != "" && len(sources) == 0 {
		sources = []string{req.From} // no live worker: announces nothing
	}
	if req.To != "" {
		targets = []string{req.To}
	}
	slices.Sort(sources)
	slices.Sort(targets)
	role := "holds a moving task's stop"
	n, f, missing := missingFeature(live, sources, []string{node.FeatureDrainDirect})
	if !missing {
		role = "may take a replacement"
		n, f, missing = missingFeature(live, targets, []string{node.FeatureDrainDirect})
	}
	if !missing {
		return nil
	}
	return api.Errorf(api.CodeBadRequest, "migrate --copy direct refused, nothing was changed: node %s (it %s) does not announce the worker feature %q: %s",
		n, role, f, featureWhy(f, n))
}

// labelCopy is the stack's swarmckpt.migration label ("" without one, or when the
// labels cannot be read or do not derive a policy: the default applies).
func (s *Restores) labelCopy(ctx context.Context, stackName string) string {
	if s.cfg.Labels == nil {
		return ""
	}
	all, err := s.cfg.Labels.ServiceLabels(ctx)
	if err != nil {
		s.log.Warn("cannot read the stack's labels for its migration default; migrating streamed", "stack", stackName, "err", err)
		return ""
	}
	var mine []policy.Service
	for _, sl := range all {
		if sl.Stack == stackName {
			mine = append(mine, policy.Service{Name: sl.Service, Labels: sl.Labels})
		}
	}
	p, err := policy.Derive(stackName, mine)
	if err != nil {
		s.log.Warn("the stack's labels are not all valid (see 'swarmckpt policy'); its migration label applies if it is", "stack", stackName, "err", err)
	}
	if p == nil {
		return ""
	}
	if !slices.Contains(policy.Migrations, p.Migration) {
		return ""
	}
	return p.Migration
}

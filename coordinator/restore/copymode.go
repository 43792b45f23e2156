package restore

import (
	"context"
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
		if req.Mode == api.ModeSwarm {
			// Swarm mode places the tasks itself (with --from: anywhere but NODE) and
			// restores sets as copies: not yet for a set whose only copy is the target's.
			if explicit {
				return "", true, api.Errorf(api.CodeBadRequest, "migrate --copy direct --mode swarm refused, nothing was changed: direct copies need --mode exact (in swarm mode the set's only copy would be used up by the restore); use --mode exact, or --copy streamed")
			}
			return api.CopyStreamed, false, nil
		}
		return api.CopyDirect, explicit, nil
	case api.CopyPostCopy:
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
		if err := s.preCopyGate(); err != nil {
			return "", true, err
		}
		return "", true, api.Errorf(api.CodeBadRequest, "migrate --copy pre-copy refused, nothing was changed: every live node tracks soft-dirty pages, but migrate has no pre-copy dump loop yet (the iteration policy is worker/migrate.NextRound); use --copy direct or --copy streamed")
	default:
		return "", explicit, api.Errorf(api.CodeBadRequest, "migrate refused, nothing was changed: unknown copy mode %q: use %s or %s (%s and %s only where every node involved announces them: 'swarmckpt status' FEATURES)", mode, api.CopyStreamed, api.CopyDirect, api.CopyPostCopy, api.CopyPreCopy)
	}
}

// preCopyGate refuses pre-copy unless every live node announces soft-dirty tracking
// (node.FeaturePreCopy: its kernel has CONFIG_MEM_SOFT_DIRTY): before the snapshot the
// nodes that will dump are not known yet, and any node of the stack may be one.
func (s *Restores) preCopyGate() error {
	live := s.live()
	var nodes []string
	for _, w := range live {
		nodes = append(nodes, w.Node)
	}
	slices.Sort(nodes)
	if n, f, missing := missingFeature(live, nodes, []string{node.FeaturePreCopy}); missing {
		return api.Errorf(api.CodeBadRequest, "migrate --copy pre-copy refused, nothing was changed: node %s does not announce the worker feature %q: %s", n, f, featureWhy(f, n))
	}
	return nil
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

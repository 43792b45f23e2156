package restore

import (
	"fmt"
	"slices"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// A copy mode asks things of the nodes' workers that an older worker, or a kernel
// without a feature, cannot do; each node announces what it can (node.Worker.Features,
// in its heartbeats and membership metadata), and a migration asks a node only for
// what it announces.

// copyNeeds are the features copy mode needs of the node that dumps a moving
// container (source) and of its target.
func copyNeeds(mode string) (source, target []string) {
	switch mode {
	case api.CopyDirect:
		// An older worker kills the container on a held DumpInto (before the
		// migration committed); the target keeps the set in place (Keep).
		return []string{node.FeatureDumpIntoHeld}, []string{node.FeatureDumpIntoHeld}
	case api.CopyPreCopy:
		return []string{node.FeaturePreCopy}, nil
	case api.CopyPostCopy:
		// The source serves the pages of a parked container and stays as it is held
		// after the last one; the target's lazy-pages daemon fetches them and its agent
		// reports the last one. Both need userfaultfd and large pipes (post-copy).
		both := []string{node.FeaturePostCopy, node.FeaturePostCopyMigrate}
		return both, both
	}
	return nil, nil
}

// featureWhy says what a node lacking feature f is, and what to do about it.
func featureWhy(f, nodeName string) string {
	switch f {
	case node.FeaturePreCopy:
		return "its kernel does not track soft-dirty pages (CONFIG_MEM_SOFT_DIRTY off: `criu check --feature mem_dirty_track` fails), so iterative pre-dumps cannot run there; migrate with --copy direct or --copy streamed, or between nodes whose kernels have soft-dirty"
	case node.FeaturePostCopy:
		return fmt.Sprintf("post-copy cannot run on node %s (its kernel lacks non-cooperative userfaultfd, or fs.pipe-max-size is below 4 MiB and its worker cannot raise it: see the worker's log, or `sysctl -w fs.pipe-max-size=4194304` there); migrate with --copy direct or --copy streamed", nodeName)
	case node.FeaturePostCopyMigrate:
		return "its worker cannot serve a parked container's pages for a migration (a held lazy dump; no swarmckpt worker of this version can: docs/dataplane.md \"Post-copy in migrate\"); migrate with --copy direct (least downtime of the available modes) or --copy streamed"
	case node.FeatureDrainDirect:
		return fmt.Sprintf("its worker is older than this coordinator: it cannot checkpoint a held task straight into another node; upgrade swarmckpt (worker and agent) on node %s to this version, or migrate with --copy streamed", nodeName)
	case node.FeatureDumpIntoHeld:
		return fmt.Sprintf("its worker is older than this coordinator: it would end the container on a held direct dump, before the migration committed; upgrade swarmckpt (worker and agent) on node %s to this version, or migrate with --copy streamed", nodeName)
	}
	return fmt.Sprintf("upgrade swarmckpt (worker and agent) on node %s", nodeName)
}

// missingFeature is the first node of nodes (in order) whose live worker does not
// announce one of features, and that feature; a node without a live worker announces
// nothing.
func missingFeature(live []store.Worker, nodes, features []string) (nodeName, feature string, missing bool) {
	for _, n := range nodes {
		i := slices.IndexFunc(live, func(w store.Worker) bool { return w.Node == n })
		for _, f := range features {
			if i < 0 || !live[i].Has(f) {
				return n, f, true
			}
		}
	}
	return "", "", false
}

// copyGate checks that every node a copy mode would ask something of announces it:
// the nodes that dump the moving containers of m (targets: container key -> target
// node) and their targets. The error names the node, the feature and what to do.
func copyGate(live []store.Worker, mode string, m *store.Manifest, targets map[string]string) error {
	srcNeeds, dstNeeds := copyNeeds(mode)
	var sources, dests []string
	for _, c := range m.Containers {
		t, ok := targets[c.Key()]
		if !ok {
			continue
		}
		if !slices.Contains(sources, c.Node) {
			sources = append(sources, c.Node)
		}
		if !slices.Contains(dests, t) {
			dests = append(dests, t)
		}
	}
	slices.Sort(sources)
	slices.Sort(dests)
	n, f, missing := missingFeature(live, sources, srcNeeds)
	role := "dumps a moving container"
	if !missing {
		n, f, missing = missingFeature(live, dests, dstNeeds)
		role = "is a target"
	}
	if !missing {
		return nil
	}
	return api.Errorf(api.CodeBadRequest, "migrate --copy %s refused, nothing was changed: node %s (it %s) does not announce the worker feature %q: %s",
		mode, n, role, f, featureWhy(f, n))
}

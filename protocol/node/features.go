package node

import "slices"

// Worker features (Worker.Features, announced in heartbeats and in the node's
// membership metadata): what a worker of this version can do that an older one cannot,
// or what its kernel allows. The coordinator asks a node for one of these only when
// the node announces it. ONLY APPEND TO THIS LIST; a name never changes meaning.
const (
	// FeatureDumpIntoHeld: the worker's DumpInto honours a held container (DumpWith
	// Into + LeaveRunning, migrate --copy direct): the container stays as its caller
	// holds it. A worker without it ends the container once the target holds the set.
	FeatureDumpIntoHeld = "dump-into-held"
	// FeaturePostCopy: post-copy (lazy pages) can run on this node (worker
	// NodeInfo.PostCopy: uffd, the pipe size).
	FeaturePostCopy = "post-copy"
	// FeaturePreCopy: iterative pre-dumps can run on this node: its kernel tracks
	// soft-dirty pages (worker NodeInfo.PreCopy).
	FeaturePreCopy = "pre-copy"
	// FeaturePostCopyMigrate: the worker does a held lazy dump (a migration's parked
	// container serves its pages from a page server and is left as its caller holds
	// it after the last one) and its agent reports when a post-copy restore's last page
	// arrived: what `migrate --copy post-copy` asks of the dumping node and the target
	// (with FeaturePostCopy). Every worker of this version announces it.
	FeaturePostCopyMigrate = "post-copy-migrate"
	// FeatureDrainDirect: the worker checkpoints a held stop (the drain hold) straight
	// into another node's worker (HeldRequest.Into: the pages to its page server, no
	// copy on this node) and reports where the set went (DrainEvent.Into): what a
	// drain or a swarm-mode migration with copy direct asks of the held task's node
	// and of its replacement's. Every worker of this version announces it.
	FeatureDrainDirect = "drain-direct"
)

// Has says whether w announces feature f.
func (w Worker) Has(f string) bool { return slices.Contains(w.Features, f) }

// MergeFeatures returns have with every feature of add it lacks appended (order kept).
func MergeFeatures(have, add []string) []string {
	for _, f := range add {
		if !slices.Contains(have, f) {
			have = append(have, f)
		}
	}
	return have
}

package restore

import (
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// TestCopyGate: a copy mode asks the dumping nodes of the moving containers and their
// targets only for features they announce; a node that lacks one (an older worker, a
// kernel without soft-dirty, no live worker) is named with the feature and what to do.
// Containers that do not move, and nodes that dump none of them, are not asked.
func TestCopyGate(t *testing.T) {
	current := node.MergeFeatures(nil, []string{node.FeatureDumpIntoHeld, node.FeaturePostCopy})
	m := &store.Manifest{Containers: []store.Container{
		{Service: "s", Slot: 1, Node: "a"}, {Service: "s", Slot: 2, Node: "b"}, {Service: "s", Slot: 3, Node: "old"},
	}}
	for _, tc := range []struct {
		name    string
		live    []store.Worker
		mode    string
		targets map[string]string
		want    []string // substrings of the refusal; nil: allowed
	}{
		{name: "AllCurrent", mode: api.CopyDirect, targets: map[string]string{"s.1": "b", "s.2": "a"},
			live: []store.Worker{{Node: "a", Features: current}, {Node: "b", Features: current}, {Node: "old"}}},
		{name: "OldNodeDumpsNothing", mode: api.CopyDirect, targets: map[string]string{"s.1": "b"},
			live: []store.Worker{{Node: "a", Features: current}, {Node: "b", Features: current}, {Node: "old"}}},
		{name: "OldSource", mode: api.CopyDirect, targets: map[string]string{"s.3": "a"},
			live: []store.Worker{{Node: "a", Features: current}, {Node: "old"}},
			want: []string{"node old (it dumps a moving container)", `"dump-into-held"`, "upgrade swarmckpt (worker and agent) on node old", "--copy streamed", "nothing was changed"}},
		{name: "OldTarget", mode: api.CopyDirect, targets: map[string]string{"s.1": "old"},
			live: []store.Worker{{Node: "a", Features: current}, {Node: "old"}},
			want: []string{"node old (it is a target)", "upgrade swarmckpt (worker and agent) on node old"}},
		{name: "TargetNotLive", mode: api.CopyDirect, targets: map[string]string{"s.1": "gone"},
			live: []store.Worker{{Node: "a", Features: current}},
			want: []string{"node gone (it is a target)"}},
		{name: "StreamedNeedsNothing", mode: api.CopyStreamed, targets: map[string]string{"s.3": "a"},
			live: []store.Worker{{Node: "a"}, {Node: "old"}}},
		{name: "PreCopyNoSoftDirty", mode: api.CopyPreCopy, targets: map[string]string{"s.1": "b"},
			live: []store.Worker{{Node: "a", Features: current}, {Node: "b", Features: current}},
			want: []string{"node a (it dumps a moving container)", `"pre-copy"`, "soft-dirty", "CONFIG_MEM_SOFT_DIRTY"}},
		{name: "PreCopySoftDirty", mode: api.CopyPreCopy, targets: map[string]string{"s.1": "b"},
			live: []store.Worker{{Node: "a", Features: []string{node.FeaturePreCopy}}, {Node: "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := copyGate(tc.live, tc.mode, m, tc.targets)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want refused with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestMergeFeatures: the agent merges its worker's features into what it announces
// without repeating one.
func TestMergeFeatures(t *testing.T) {
	got := node.MergeFeatures([]string{"kernel=6.18", "post-copy"}, []string{"post-copy", node.FeatureDumpIntoHeld})
	if strings.Join(got, ",") != "kernel=6.18,post-copy,"+node.FeatureDumpIntoHeld {
		t.Fatalf("merged %v", got)
	}
}

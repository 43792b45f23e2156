package restore

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
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

// gateHost is a Host whose only uses by streamTo are its live workers and the events
// it records.
type gateHost struct {
	Host
	workers []store.Worker
	events  []api.Event
}

func (h *gateHost) Live() []store.Worker                 { return h.workers }
func (h *gateHost) Event(_ context.Context, e api.Event) { h.events = append(h.events, e) }

// TestStreamToPostCopy: post-copy asks the dumping node and the target for post-copy
// and post-copy-migrate. Asked with --copy, a node without them is refused by name,
// nothing changed; asked by the stack's label, the migration falls back to direct
// where the nodes can do that (else streamed) and says so. Where every node announces
// both: TestStreamToPostCopyDriven.
func TestStreamToPostCopy(t *testing.T) {
	direct := []string{node.FeatureDumpIntoHeld, node.FeaturePostCopy}
	all := append(slices.Clone(direct), node.FeaturePostCopyMigrate)
	for _, tc := range []struct {
		name      string
		explicit  bool
		a, b      []string // features of the source a and the target b
		want      string   // resolved copy mode; "" refused
		refusal   []string
		warnsWith string
	}{
		{name: "FlagNoWorkerCanServe", explicit: true, a: direct, b: direct,
			refusal: []string{"node a (it dumps a moving container)", `"post-copy-migrate"`, "--copy direct", "nothing was changed"}},
		{name: "FlagTargetWithoutUffd", explicit: true, a: all, b: []string{node.FeatureDumpIntoHeld},
			refusal: []string{"node b (it is a target)", `"post-copy"`, "userfaultfd"}},
		{name: "LabelFallsBackToDirect", a: direct, b: direct, want: api.CopyDirect, warnsWith: "migrating direct"},
		{name: "LabelFallsBackToStreamed", a: nil, b: direct, want: api.CopyStreamed, warnsWith: "migrating streamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &gateHost{workers: []store.Worker{{Node: "a", Address: "a:1", Features: tc.a}, {Node: "b", Address: "b:1", Features: tc.b}}}
			s, err := New(Config{Host: h, Store: store.NewMemory(), Bus: bus.NewNetwork().Connect(),
				NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			pre := &store.Manifest{ID: "m", Containers: []store.Container{{Service: "s", Slot: 1, Node: "a"}}}
			mode := api.CopyPostCopy
			out, err := s.streamTo(context.Background(), pre, map[string]string{"s.1": "b"}, api.CopyPostCopy, tc.explicit, &mode)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("allowed (%v), want refused with %q", out, tc.refusal)
				}
				for _, w := range tc.refusal {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil || mode != tc.want || out["s.1"] != "b:1" {
				t.Fatalf("streamTo: %v %v, copy %q; want s.1 to b:1, copy %q", out, err, mode, tc.want)
			}
			if got := pre.Containers[0].Direct; got != (tc.want == api.CopyDirect) {
				t.Errorf("container marked direct=%v, copy %q", got, tc.want)
			}
			if len(h.events) == 0 || !strings.Contains(h.events[0].Message, tc.warnsWith) || !strings.Contains(h.events[0].Message, "post-copy") {
				t.Errorf("events %+v, want a warning saying %q", h.events, tc.warnsWith)
			}
		})
	}
}

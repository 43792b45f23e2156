package restore

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// noHost is a Host whose only use by migrationCopy is its live workers (pre-copy's
// gate): lab-1 and lab-3, whose kernels track no soft-dirty pages.
type noHost struct{ Host }

func (noHost) Live() []store.Worker {
	return []store.Worker{{Node: "lab-1", Features: []string{"dump-into-held"}}, {Node: "lab-3"}}
}

// TestMigrationCopy: --copy as given wins; without it the stack's swarmckpt.migration
// label decides (cold is streamed; direct and post-copy in swarm mode fall back to
// streamed; post-copy's nodes are checked later, in streamTo), else streamed. An explicit choice that
// cannot apply is refused, saying nothing was changed.
func TestMigrationCopy(t *testing.T) {
	labels := &stack.FakeLabels{}
	s, err := New(Config{Host: noHost{}, Store: store.NewMemory(), Bus: bus.NewNetwork().Connect(), Labels: labels,
		NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, label, copy, mode string
		want                    string
		explicit                bool
		err                     string
	}{
		{name: "Default", want: api.CopyStreamed},
		{name: "LabelDirect", label: "direct", want: api.CopyDirect},
		{name: "LabelCold", label: "cold", want: api.CopyStreamed},
		{name: "LabelPostCopy", label: "post-copy", want: api.CopyPostCopy},
		{name: "LabelPostCopySwarm", label: "post-copy", mode: api.ModeSwarm, want: api.CopyStreamed},
		{name: "LabelDirectSwarm", label: "direct", mode: api.ModeSwarm, want: api.CopyStreamed},
		{name: "FlagWins", label: "direct", copy: api.CopyStreamed, want: api.CopyStreamed, explicit: true},
		{name: "FlagDirect", copy: api.CopyDirect, want: api.CopyDirect, explicit: true},
		{name: "FlagPostCopy", copy: api.CopyPostCopy, want: api.CopyPostCopy, explicit: true},
		{name: "FlagPostCopySwarm", copy: api.CopyPostCopy, mode: api.ModeSwarm, err: "post-copy needs --mode exact"},
		{name: "FlagDirectSwarm", copy: api.CopyDirect, mode: api.ModeSwarm, err: "direct copies need --mode exact"},
		{name: "Unknown", copy: "teleport", err: `unknown copy mode "teleport"`},
		{name: "FlagPreCopy", copy: api.CopyPreCopy, err: "node lab-1 does not announce the worker feature \"pre-copy\": its kernel does not track soft-dirty pages"},
		{name: "LabelPreCopy", label: "pre-copy", want: api.CopyStreamed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels.Remove("bank", "bank_holder")
			if tc.label != "" {
				labels.Set("bank", "bank_holder", map[string]string{"swarmckpt.migration": tc.label})
			}
			got, explicit, err := s.migrationCopy(context.Background(), api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: tc.copy, Mode: tc.mode})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "nothing was changed") {
					t.Fatalf("copy %q: %q, %v; want refused with %q", tc.copy, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || explicit != tc.explicit {
				t.Fatalf("label %q, copy %q, mode %q: %q (explicit %v), %v; want %q (explicit %v)", tc.label, tc.copy, tc.mode, got, explicit, err, tc.want, tc.explicit)
			}
		})
	}
	// Another stack's label does not apply.
	labels.Set("other", "svc", map[string]string{"swarmckpt.migration": "direct"})
	labels.Remove("bank", "bank_holder")
	if got, _, err := s.migrationCopy(context.Background(), api.MigrateRequest{Stack: "bank", To: "lab-3"}); err != nil || got != api.CopyStreamed {
		t.Fatalf("bank without a label, other stack direct: %q %v, want streamed", got, err)
	}
}

package restore

import (
	"context"
	"errors"
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

func (noHost) Event(context.Context, api.Event) {}

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
		{name: "FlagPreCopySwarm", copy: api.CopyPreCopy, mode: api.ModeSwarm, err: "pre-copy needs --mode exact"},
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

// softDirtyHost's lab-1 and lab-2 track soft-dirty pages, lab-3 does not.
type softDirtyHost struct{ Host }

func (softDirtyHost) Event(context.Context, api.Event) {}

func (softDirtyHost) Live() []store.Worker {
	return []store.Worker{{Node: "lab-1", Features: []string{"pre-copy"}}, {Node: "lab-2", Features: []string{"pre-copy"}}, {Node: "lab-3"}}
}

// TestPreCopyGate: pre-copy needs soft-dirty on every node that may dump a moving
// container (--from NODE: NODE; --to NODE: every other live node), not on the
// target; refused otherwise, naming the node and what to use instead, with
// CodeBadRequest (exit 2), before anything is touched; a label's pre-copy falls
// back to streamed there.
func TestPreCopyGate(t *testing.T) {
	labels := &stack.FakeLabels{}
	s, err := New(Config{Host: softDirtyHost{}, Store: store.NewMemory(), Bus: bus.NewNetwork().Connect(), Labels: labels,
		NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, to, from, label string
		want                  string
		err                   string
	}{
		{name: "ToNodeWithout", to: "lab-3", want: api.CopyPreCopy},
		{name: "FromNodeWith", from: "lab-1", want: api.CopyPreCopy},
		{name: "FromNodeWithout", from: "lab-3", err: "node lab-3 does not announce the worker feature \"pre-copy\""},
		{name: "ToNodeWith", to: "lab-1", err: "node lab-3 does not announce"},
		{name: "FromUnknownNode", from: "lab-9", err: "node lab-9 does not announce"},
		{name: "LabelFallsBack", to: "lab-1", label: "pre-copy", want: api.CopyStreamed},
		{name: "LabelApplies", to: "lab-3", label: "pre-copy", want: api.CopyPreCopy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels.Remove("bank", "bank_holder")
			req := api.MigrateRequest{Stack: "bank", To: tc.to, From: tc.from, Copy: api.CopyPreCopy}
			if tc.label != "" {
				labels.Set("bank", "bank_holder", map[string]string{"swarmckpt.migration": tc.label})
				req.Copy = ""
			}
			got, _, err := s.migrationCopy(context.Background(), req)
			if tc.err != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(err.Error(), tc.err) ||
					!strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "--copy direct or --copy streamed") {
					t.Fatalf("%+v: %q, %v; want refused (bad request) with %q", req, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%+v: %q, %v; want %q", req, got, err, tc.want)
			}
		})
	}
}

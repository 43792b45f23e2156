package workertest

import (
	"context"
	"errors"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// RunPreCopier runs the PreCopier part of the suite alone (Run runs it too): for
// factories whose nodes track soft-dirty pages, which Run's do not.
func RunPreCopier(t *testing.T, f Factory) { testPreCopier(t, f) }

// testPreCopier: a node that does not announce pre-copy (Info.PreCopy) refuses
// PreCopy with node.ErrNoSoftDirty; one that does pre-dumps in rounds, sends them
// ahead to the other node, and the
// set's PreCopied dump takes them (Manifest.PreDumps) and streams to the other node;
// a PreCopied dump of a set whose pre-dumps are gone is refused
// (node.ErrFailedPrecondition) and dumps nothing.
func testPreCopier(t *testing.T, f Factory) {
	a, b := f(t)
	pc := a.Roles.PreCopier
	if pc == nil {
		t.Skip("SKIP: this implementation offers no PreCopier role")
	}
	ctx := context.Background()
	info, err := a.Roles.Inspector.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctr, set := a.Container(t), id("wt.pre")
	rep, err := pc.PreCopy(ctx, ctr, set, b.Addr)
	if !info.PreCopy.OK {
		if !errors.Is(err, node.ErrNoSoftDirty) || !errors.Is(err, node.ErrFailedPrecondition) {
			t.Fatalf("PreCopy on a node without pre-copy (%s): %+v %v, want node.ErrNoSoftDirty", info.PreCopy.Reason, rep, err)
		}
	} else {
		if err != nil || len(rep.Rounds) == 0 || rep.Why == "" || rep.SentTo != b.Addr {
			t.Fatalf("PreCopy: %+v %v, want its rounds, why they stopped, and the pre-dumps sent ahead to %s", rep, err, b.Addr)
		}
		m, err := a.Roles.Dumper.DumpWith(ctx, ctr, set, worker.DumpOptions{StreamTo: b.Addr, PreCopied: true})
		if err != nil || m.PreDumps != len(rep.Rounds) {
			t.Fatalf("PreCopied dump: %+v %v, want %d pre-dumps taken", m, err, len(rep.Rounds))
		}
	}
	// The pre-dumps are taken (or were never made): another PreCopied dump is refused.
	again := id("wt.pre")
	if _, err := a.Roles.Dumper.DumpWith(ctx, a.Container(t), again, worker.DumpOptions{PreCopied: true}); !errors.Is(err, node.ErrFailedPrecondition) {
		t.Fatalf("PreCopied dump without pre-dumps: %v, want node.ErrFailedPrecondition", err)
	}
}

package worker_test

import (
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

// TestMemhogStreamedMigrationKeepsMemory: cold migration with DumpTo (images streamed
// while CRIU writes them) restores a memhog on the other node with a byte-identical
// memory checksum, continuing (not restarting) its passes.
func TestMemhogStreamedMigrationKeepsMemory(t *testing.T) {
	_, dst, name, want, a, b := memhogPair(t, "dpstream", 96)
	ctx := dockertest.Context(t, 2*time.Minute)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set := name + ".set"
	m, err := a.DumpTo(ctx, name, set, bi.Addr, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalBytes() < 96<<20 {
		t.Fatalf("streamed set holds %d bytes, want the 96 MiB of memory", m.TotalBytes())
	}
	restoredKeepsMemory(ctx, t, b, dst, name, set, want)
	// The source keeps its sealed copy until told otherwise (fallback if the target fails).
	if err := a.DropSet(ctx, set); err != nil {
		t.Fatal(err)
	}
}

// TestMemhogDirectMigrationKeepsMemory: cold migration with DumpInto (CRIU sends the
// pages straight to the target's page server; no copy on the source) restores a memhog
// on the other node with a byte-identical memory checksum, continuing its passes, and
// the source container is ended, not left running or frozen.
func TestMemhogDirectMigrationKeepsMemory(t *testing.T) {
	src, dst, name, want, a, b := memhogPair(t, "dpdirect", 96)
	ctx := dockertest.Context(t, 2*time.Minute)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set := name + ".set"
	m, err := a.DumpInto(ctx, name, set, bi.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalBytes() >= 96<<20 {
		t.Fatalf("the source's part of the set holds %d bytes: the pages should have gone to the target only", m.TotalBytes())
	}
	// DumpInto returns once the source's process is gone (runc says so); Docker learns
	// it from containerd's exit event a moment later.
	var st string
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		st, err = src.Docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", name)
		if err == nil && st == "exited 0" {
			t.Logf("docker reported the source exited %.3fs after DumpInto returned", time.Since(start).Seconds())
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("source container 10s after DumpInto: %q %v, want it exited", st, err)
		}
	}
	restoredKeepsMemory(ctx, t, b, dst, name, set, want)
}

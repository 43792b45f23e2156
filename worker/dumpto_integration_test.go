package worker_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

// memhogPair starts a 96 MiB memhog named <prefix>-N on node 1, waits for its first
// memory checksum (want) and starts a worker daemon on each of two nodes.
func memhogPair(t *testing.T, prefix string) (src, dst dockertest.Node, name, want string, a, b *worker.Client) {
	t.Helper()
	nodes := dockertest.Nodes(t, 2)
	src, dst = nodes[0], nodes[1]
	name = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%100000)
	src.Run(t, name, dockertest.Image, "memhog", "96")
	logs := src.WaitLog(t, name, 20*time.Second, "first checksum", func(l string) bool { return sumRE.MatchString(l) })
	want = sumRE.FindStringSubmatch(logs)[1]
	a, _, _ = daemon(t, src, "src")
	b, _, _ = daemon(t, dst, "dst")
	return src, dst, name, want, a, b
}

// restoredKeepsMemory restores set on dst through b and checks that the memhog came back
// with the memory checksum want, continuing its passes rather than starting afresh.
func restoredKeepsMemory(ctx context.Context, t *testing.T, b *worker.Client, dst dockertest.Node, name, set, want string) {
	t.Helper()
	t.Cleanup(func() { _, _ = dst.Docker("rm", "-f", name) })
	ref, err := b.Restore(ctx, set, worker.RestoreOptions{Runtime: "swarmckpt"})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Pid <= 0 {
		t.Fatalf("restored ref %+v", ref)
	}
	logs := dst.WaitLog(t, name, 20*time.Second, "checksum after restore", func(l string) bool { return sumRE.MatchString(l) })
	got := sumRE.FindStringSubmatch(logs)
	if got[1] != want {
		t.Fatalf("memory checksum after the migration %s, before %s", got[1], want)
	}
	if p, _ := strconv.Atoi(got[2]); p == 0 {
		t.Fatalf("restored process printed pass 0: it started fresh instead of being restored")
	}
}

// TestMemhogStreamedMigrationKeepsMemory: cold migration with DumpTo (images streamed
// while CRIU writes them) restores a memhog on the other node with a byte-identical
// memory checksum, continuing (not restarting) its passes.
func TestMemhogStreamedMigrationKeepsMemory(t *testing.T) {
	_, dst, name, want, a, b := memhogPair(t, "dpstream")
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
	src, dst, name, want, a, b := memhogPair(t, "dpdirect")
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
	if st, err := src.Docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", name); err != nil || st != "exited 0" {
		t.Fatalf("source container after DumpInto: %q %v, want it exited", st, err)
	}
	restoredKeepsMemory(ctx, t, b, dst, name, set, want)
}

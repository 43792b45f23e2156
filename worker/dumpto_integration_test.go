package worker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"

	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/pki"
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
// the source container is ended, not left running or frozen. The set is kept (as a
// migration's snapshot keeps it): its pages, hashed after the restore (the target's
// default page digests), are then recorded and verify.
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
	restoredKeepsMemoryWith(ctx, t, b, dst, name, set, want, worker.RestoreOptions{Keep: true})
	// Sockets waits for the pages' hash after the restore, then re-hashes the whole set
	// against the manifest it wrote.
	res, err := b.Sockets(ctx, set, "x")
	if err != nil {
		t.Fatalf("verify the kept set after the restore: %v", err)
	}
	var pages int64
	for _, f := range res.Manifest.Files {
		if len(f.SHA256) != 64 {
			t.Errorf("%s recorded without a digest: %+v", f.Name, f)
		}
		if strings.HasPrefix(f.Name, "pages-") {
			pages += f.Size
		}
	}
	if res.Manifest.PagesUnhashed || res.Manifest.PagesReceivedBy == "" || pages < 96<<20 {
		t.Fatalf("kept set after its pages were hashed: unhashed %v, received by %q, %d bytes of pages",
			res.Manifest.PagesUnhashed, res.Manifest.PagesReceivedBy, pages)
	}
	if err := b.DropSet(ctx, set); err != nil {
		t.Fatal(err)
	}
}

// TestMemhogMigratedBetweenTLSWorkers: workers started with --tls-* (certificates made
// by `swarmckpt worker tls-init`) migrate memhogs in every mode that crosses the network:
// streamed over HTTPS (DumpTo), direct into the target's CRIU page server over CRIU's
// TLS (DumpInto), and post-copy with CRIU's TLS lazy pages; each comes back on the other
// node with its memory. A client without the CA is told the worker runs with TLS.
func TestMemhogMigratedBetweenTLSWorkers(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	src, dst := nodes[0], nodes[1]
	dir := filepath.Join(t.TempDir(), "tls")
	flags := map[string][]string{}
	for _, node := range []string{"src", "dst"} {
		out, err := exec.Command(swarmckptBinary(t), "worker", "tls-init", "--dir", dir, "--node", node, "--ip", "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("worker tls-init: %v: %s", err, out)
		}
		caCert, _ := pki.CAFiles(dir)
		cert, key := pki.NodeFiles(dir, node)
		flags[node] = []string{"--tls-ca", caCert, "--tls-cert", cert, "--tls-key", key}
	}
	a, _, _ := daemonArgs(t, src, "src", flags["src"]...)
	b, _, _ := daemonArgs(t, dst, "dst", flags["dst"]...)
	ctx := dockertest.Context(t, 4*time.Minute)
	if _, err := a.Info(ctx); err == nil || !strings.Contains(err.Error(), "runs with TLS") {
		t.Fatalf("a client without the CA: %v; want it told the worker runs with TLS", err)
	}
	caCert, _ := pki.CAFiles(dir)
	pool, err := worker.LoadCA(caCert)
	if err != nil {
		t.Fatal(err)
	}
	a.TLS, b.TLS = worker.ClientTLS(pool), worker.ClientTLS(pool)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("DumpTo", func(t *testing.T) {
		name, want := runMemhog(t, src, "dptls-to", 64)
		if _, err := a.DumpTo(ctx, name, name+".set", bi.Addr, false); err != nil {
			t.Fatal(err)
		}
		restoredKeepsMemory(ctx, t, b, dst, name, name+".set", want)
		if err := a.DropSet(ctx, name+".set"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DumpInto", func(t *testing.T) {
		name, want := runMemhog(t, src, "dptls-into", 64)
		if _, err := a.DumpInto(ctx, name, name+".set", bi.Addr); err != nil {
			t.Fatal(err)
		}
		restoredKeepsMemory(ctx, t, b, dst, name, name+".set", want)
	})
	t.Run("PostCopy", func(t *testing.T) {
		if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
			t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
		}
		name, want := runMemhog(t, src, "dptls-lazy", 64)
		postCopyKeepsMemory(ctx, t, src, dst, a, b, name, want)
		// The source's CRIU served the pages with TLS: its log (kept with the source's
		// set) shows the worker's CRIU configuration and the handshake.
		log, err := os.ReadFile(filepath.Join(src.DataRoot, "swarmckpt", "sets", name+".set", "work", "dump.log"))
		if err != nil || !strings.Contains(string(log), "criu-tls.conf") || !strings.Contains(string(log), "TLS handshake completed") {
			t.Fatalf("the source's CRIU log does not show a TLS page server (%v)", err)
		}
		_ = a.DropSet(ctx, name+".set")
	})
}

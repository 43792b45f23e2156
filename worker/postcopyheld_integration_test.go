package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

// TestMemhogPostCopyHeld: a migration's post-copy dump of a parked container (its
// caller holds it network-locked and frozen; DumpWith with Lazy and LeaveRunning):
// the container restarts on the other node before its memory moved and keeps its
// memory checksum; the source serves the pages and, after the last one, is not ended
// (WaitLazy returns nil then) but stays frozen as its caller holds it, so that its
// caller's Stop (which ends only a frozen container) ends it.
func TestMemhogPostCopyHeld(t *testing.T) {
	src, dst, name, want, a, b := memhogPair(t, "dpheldlazy", 128)
	ctx := dockertest.Context(t, 2*time.Minute)
	if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
		t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
	}
	set := name + ".set"
	if err := a.WaitLazy(ctx, set); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("WaitLazy before any post-copy dump: %v, want not found (ErrNoLazy)", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	if err := a.Lock(ctx, name, nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := a.Freeze(ctx, name, deadline); err != nil {
		t.Fatal(err)
	}
	m, err := a.DumpWith(ctx, name, set, worker.DumpOptions{LeaveRunning: true, Lazy: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if m.LazyPages == "" || m.TotalBytes() > 16<<20 {
		t.Fatalf("held lazy dump wrote %d bytes, page server %q: memory should not be in the set", m.TotalBytes(), m.LazyPages)
	}
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, set, bi.Addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dst.Docker("rm", "-f", name) })
	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Runtime: "swarmckpt"}); err != nil {
		t.Fatal(err)
	}
	logs := dst.WaitLog(t, name, 30*time.Second, "checksum after a held post-copy restore", func(l string) bool { return sumRE.MatchString(l) })
	if got := sumRE.FindStringSubmatch(logs); got[1] != want {
		t.Fatalf("memory checksum after a held post-copy %s, before %s", got[1], want)
	}
	// The last page was served: the source's page server ended without an error.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := a.WaitLazy(wctx, set); err != nil {
		t.Fatalf("WaitLazy after the restore: %v, want every page served", err)
	}
	// The source was not ended: still there, and frozen (Stop refuses a container
	// that runs on), until its caller ends it.
	if st, err := src.Docker("inspect", "-f", "{{.State.Status}}", name); err != nil || st != "running" {
		t.Fatalf("source %s after every page was served: %q %v, want it left as held (running, frozen)", name, st, err)
	}
	if err := a.Stop(ctx, name); err != nil {
		t.Fatalf("the caller's Stop of the held source after post-copy: %v (it must stay frozen until then)", err)
	}
	if st, _ := src.Docker("inspect", "-f", "{{.State.Status}}", name); st == "running" {
		t.Fatalf("source %s still running after its Stop", name)
	}
}

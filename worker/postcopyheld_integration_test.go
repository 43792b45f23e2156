package worker_test

import (
	"context"
	"errors"
	"strings"
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
	t0 := time.Now()
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
	restored := time.Since(t0)
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
	t.Logf("128 MiB held post-copy: lock to restored (downtime) %.2f s, every page served after %.2f s", restored.Seconds(), time.Since(t0).Seconds())
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

// TestEchoServerPostCopyHeldKeepsTheConnection: the exact-mode address question of a
// post-copy migration. The echo server, parked (locked, frozen) and dumped post-copy
// held, still holds its overlay address on its node while it serves its pages, and
// the restore on the client's node needs that address. Disconnected from the overlay
// (the worker's DisconnectHeld: docker network disconnect -f of each of its networks)
// while frozen, the source keeps serving its pages
// over the worker's own channel (the page server runs in the node's namespace, not
// the container's), the restored server takes the address, and the client carries on
// on the same connection with no gap, duplicate or error; after the last page the
// source is still frozen for its caller to end.
func TestEchoServerPostCopyHeldKeepsTheConnection(t *testing.T) {
	n1, n2, srv, cli := echoPair(t, "dplazy")
	a, _, _ := daemon(t, n1, "lazy-a")
	b, _, _ := daemon(t, n2, "lazy-b")
	ctx := dockertest.Context(t, 2*time.Minute)
	if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
		t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	if err := a.Lock(ctx, srv, nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := a.Freeze(ctx, srv, deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpWith(ctx, srv, srv, worker.DumpOptions{LeaveRunning: true, Lazy: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	before := oks(n2.MustDocker(t, "logs", cli))
	last := before[len(before)-1]
	// The frozen source gives its address back (the worker's DisconnectHeld, what the
	// agent's disconnect operation calls); it keeps serving its pages.
	if err := a.DisconnectHeld(ctx, srv); err != nil {
		t.Fatalf("DisconnectHeld of the frozen post-copy source: %v", err)
	}
	if nets := strings.TrimSpace(n1.MustDocker(t, "inspect", "-f", "{{len .NetworkSettings.Networks}}", srv)); nets != "0" {
		t.Fatalf("the source is still on %s networks after DisconnectHeld, want none", nets)
	}
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, srv, bi.Addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = n2.Docker("rm", "-f", srv) })
	if _, err := b.Restore(ctx, srv, worker.RestoreOptions{Runtime: "swarmckpt"}); err != nil {
		t.Fatalf("restore of the post-copy server on the client's node, the source disconnected from the overlay: %v", err)
	}
	logs := n2.WaitLog(t, cli, 30*time.Second, "20 more echoes after the post-copy move",
		func(l string) bool {
			o := oks(l)
			return len(o) > 0 && o[len(o)-1] >= last+20 || strings.Contains(l, "ERR")
		})
	if strings.Contains(logs, "ERR") || strings.Count(logs, "connected") > 1 {
		t.Fatalf("client after the post-copy move reconnected or failed:\n%s", logs)
	}
	seq := oks(logs)
	for i := 1; i < len(seq); i++ {
		if seq[i] != seq[i-1]+1 {
			t.Fatalf("sequence broken across the post-copy move (last before %d): %v", last, seq)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := a.WaitLazy(wctx, srv); err != nil {
		t.Fatalf("WaitLazy: %v, want every page served", err)
	}
	if err := a.Stop(ctx, srv); err != nil {
		t.Fatalf("Stop of the held source after post-copy: %v (it must stay frozen until then)", err)
	}
	// Ending the source sent nothing to the client (it had no interface left).
	logs = n2.WaitLog(t, cli, 30*time.Second, "10 more echoes after the source ended",
		func(l string) bool {
			o := oks(l)
			return len(o) > 0 && o[len(o)-1] >= last+30 || strings.Contains(l, "ERR")
		})
	if strings.Contains(logs, "ERR") || strings.Count(logs, "connected") > 1 {
		t.Fatalf("client after the source ended reconnected or failed:\n%s", logs)
	}
}

// TestMemhogPostCopyHeldCancelled: an aborted post-copy migration. The page server of
// a held post-copy dump is stopped (CancelLazy, what the agent's release of a parked
// post-copy source calls); WaitLazy then reports a failure, never success; the
// caller's release (thaw, unlock) lets the source run on; a second CancelLazy finds
// nothing to stop.
func TestMemhogPostCopyHeldCancelled(t *testing.T) {
	src, _, name, _, a, _ := memhogPair(t, "dplazycancel", 64)
	ctx := dockertest.Context(t, 2*time.Minute)
	if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
		t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
	}
	set := name + ".set"
	deadline := time.Now().Add(90 * time.Second)
	if err := a.Lock(ctx, name, nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := a.Freeze(ctx, name, deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpWith(ctx, name, set, worker.DumpOptions{LeaveRunning: true, Lazy: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CancelLazy(ctx, set); err != nil {
		t.Fatalf("CancelLazy of a serving page server: %v", err)
	}
	if err := a.WaitLazy(ctx, set); err == nil {
		t.Fatal("WaitLazy after CancelLazy: nil, want the page server's failure (its pages were not all served)")
	}
	passes := len(sumRE.FindAllString(src.MustDocker(t, "logs", name), -1))
	if err := a.Thaw(ctx, name); err != nil {
		t.Fatalf("release (thaw) of the source after its page server stopped: %v", err)
	}
	if err := a.Unlock(ctx, name, nil); err != nil {
		t.Fatalf("release (unlock) of the source: %v", err)
	}
	if st, err := src.Docker("inspect", "-f", "{{.State.Status}}", name); err != nil || st != "running" {
		t.Fatalf("source %s after an aborted post-copy: %q %v, want it running on", name, st, err)
	}
	// It runs on: a new pass of its memory checksum.
	src.WaitLog(t, name, 30*time.Second, "a new checksum pass after the release", func(l string) bool {
		return len(sumRE.FindAllString(l, -1)) > passes
	})
	if err := a.CancelLazy(ctx, set); err != nil {
		t.Fatalf("second CancelLazy: %v, want nil (nothing to stop)", err)
	}
}

// TestEchoServerPostCopyHeldPutBack: the rollback of a post-copy migration whose
// restore failed (coordinator/restore putBackPostCopy, through the agent's reconnect
// operation). The echo server, parked (locked, frozen), dumped post-copy held and
// taken off the overlay (DisconnectHeld), has its page server stopped (CancelLazy),
// is put back on the overlay with its address and an alias (ReconnectHeld), then
// released (thaw, unlock): it answers on its old address again and the client
// carries on on the same connection with no gap, duplicate or error.
func TestEchoServerPostCopyHeldPutBack(t *testing.T) {
	n1, n2, srv, cli := echoPair(t, "dpputback")
	a, _, _ := daemon(t, n1, "putback-a")
	ctx := dockertest.Context(t, 2*time.Minute)
	if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
		t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
	}
	// The server's endpoint as a snapshot's manifest records it.
	ipOf := func() string {
		return strings.TrimSpace(n1.MustDocker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "`+echoNet+`"}}{{.IPAddress}}{{end}}`, srv))
	}
	ip := ipOf()
	if ip == "" {
		t.Fatalf("server %s has no address on %s", srv, echoNet)
	}
	deadline := time.Now().Add(90 * time.Second)
	if err := a.Lock(ctx, srv, nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := a.Freeze(ctx, srv, deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpWith(ctx, srv, srv, worker.DumpOptions{LeaveRunning: true, Lazy: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	before := oks(n2.MustDocker(t, "logs", cli))
	last := before[len(before)-1]
	if err := a.DisconnectHeld(ctx, srv); err != nil {
		t.Fatalf("DisconnectHeld of the frozen post-copy source: %v", err)
	}
	if nets := strings.TrimSpace(n1.MustDocker(t, "inspect", "-f", "{{len .NetworkSettings.Networks}}", srv)); nets != "0" {
		t.Fatalf("the source is still on %s networks after DisconnectHeld, want none", nets)
	}
	// The restore failed (none is made here): the rollback puts the source back.
	if err := a.CancelLazy(ctx, srv); err != nil {
		t.Fatalf("CancelLazy: %v", err)
	}
	if err := a.ReconnectHeld(ctx, srv, []node.NetworkAttach{{Network: echoNet, IPv4: ip, Aliases: []string{"echo-back"}}}); err != nil {
		t.Fatalf("ReconnectHeld of the source: %v", err)
	}
	if got := ipOf(); got != ip {
		t.Fatalf("the source is back on %s at %q, want its old address %s", echoNet, got, ip)
	}
	if al := n1.MustDocker(t, "inspect", "-f", `{{with index .NetworkSettings.Networks "`+echoNet+`"}}{{.Aliases}}{{end}}`, srv); !strings.Contains(al, "echo-back") {
		t.Fatalf("the source's aliases on %s: %s, want echo-back among them", echoNet, al)
	}
	// Again: a network it is on already is left as it is.
	if err := a.ReconnectHeld(ctx, srv, []node.NetworkAttach{{Network: echoNet, IPv4: ip}}); err != nil {
		t.Fatalf("second ReconnectHeld: %v, want nil (already on it)", err)
	}
	if err := a.Thaw(ctx, srv); err != nil {
		t.Fatalf("release (thaw): %v", err)
	}
	if err := a.Unlock(ctx, srv, nil); err != nil {
		t.Fatalf("release (unlock): %v", err)
	}
	logs := n2.WaitLog(t, cli, 30*time.Second, "20 more echoes after the source was put back",
		func(l string) bool {
			o := oks(l)
			return len(o) > 0 && o[len(o)-1] >= last+20 || strings.Contains(l, "ERR")
		})
	if strings.Contains(logs, "ERR") || strings.Count(logs, "connected") > 1 {
		t.Fatalf("client after the source was put back reconnected or failed:\n%s", logs)
	}
	seq := oks(logs)
	for i := 1; i < len(seq); i++ {
		if seq[i] != seq[i-1]+1 {
			t.Fatalf("sequence broken across the put-back (last before %d): %v", last, seq)
		}
	}
}

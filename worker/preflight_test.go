package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// Preflight reports a set that is not there as Missing, and a set whose files are
// missing or of another size as a problem naming set, node and fix; a complete set
// passes. It changes nothing (the fake restorer has no Docker checks).
func TestPreflightChecksSetsBySize(t *testing.T) {
	n := newFakeNode(t, "n1")
	sets := n.w.SetsDir()
	write := func(set, name, content string) {
		p := filepath.Join(sets, set, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("s.ok", "images/pages-1.img", "12345")
	write("s.short", "images/pages-1.img", "123")
	write("s.partial", "images/pages-1.img", "12345")
	files := []worker.PreflightFile{{Name: "images/pages-1.img", Size: 5}}
	req := worker.PreflightRequest{Sets: []worker.PreflightSet{
		{Set: "s.ok", Files: files}, {Set: "s.gone", Files: files}, {Set: "s.short", Files: files},
		{Set: "s.partial", Files: append(files, worker.PreflightFile{Name: "images/core-1.img", Size: 10})},
	}}
	// Through the worker's HTTP API, as the node agent asks it.
	rep, err := (&worker.Client{Addr: n.w.Addr()}).Preflight(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != "s.gone" {
		t.Errorf("missing %v, want [s.gone]", rep.Missing)
	}
	if len(rep.Problems) != 2 {
		t.Fatalf("problems %q, want one for s.short and one for s.partial", rep.Problems)
	}
	for i, want := range []string{"image set s.short on node n1: file images/pages-1.img has 3 bytes, the snapshot recorded 5", "image set s.partial on node n1: file images/core-1.img"} {
		if !strings.Contains(rep.Problems[i], want) || !strings.Contains(rep.Problems[i], "take a new snapshot") {
			t.Errorf("problem %q, want %q and the fix", rep.Problems[i], want)
		}
	}
	if _, err := n.w.Preflight(context.Background(), worker.PreflightRequest{Sets: []worker.PreflightSet{{Set: "../x"}}}); err == nil {
		t.Error("a set ID escaping the sets directory was accepted")
	}
}

// Preflight refuses, through the worker's API, a set whose container mounts a local
// volume when the restore's target is another node than the one it ran on.
func TestPreflightRefusesLocalVolumeElsewhere(t *testing.T) {
	n := newFakeNode(t, "n1")
	set := filepath.Join(n.w.SetsDir(), "s.vol")
	if err := os.MkdirAll(filepath.Join(set, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(set, "images", "core-1.img"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &imageset.Manifest{Node: "n0", Spec: container.Spec{Name: "db", Mounts: []container.Mount{{Type: "volume", Source: "db_data", Target: "/data"}}}}
	if err := imageset.Seal(set, m); err != nil {
		t.Fatal(err)
	}
	ask := func(target string) worker.PreflightReport {
		rep, err := (&worker.Client{Addr: n.w.Addr()}).Preflight(context.Background(), worker.PreflightRequest{Sets: []worker.PreflightSet{
			{Set: "s.vol", Files: []worker.PreflightFile{{Name: "images/core-1.img", Size: 1}}, Target: target, Key: "db.1"}}})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := ask("n2"); len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "db.1: mounts the local volume db_data at /data on node n0") {
		t.Fatalf("restore on n2 of a set with a local volume of n0: problems %q", rep.Problems)
	}
	if rep := ask("n0"); len(rep.Problems) != 0 {
		t.Fatalf("restore on the container's own node: problems %q", rep.Problems)
	}
}

// preparingRestorer is a restorer whose Prepare's keepers are ready when ready is
// closed; prepared counts its Prepare calls, unprepared lists the containers its
// Unprepare released.
type preparingRestorer struct {
	restore.Restorer
	ready      chan struct{}
	prepared   atomic.Int32
	mu         sync.Mutex
	unprepared []string
}

func (p *preparingRestorer) Unprepare(_ context.Context, c restore.Check) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range c.Containers {
		p.unprepared = append(p.unprepared, cc.Name)
	}
}

func (p *preparingRestorer) Prepare(context.Context, restore.Check) <-chan struct{} {
	p.prepared.Add(1)
	return p.ready
}

// A Prepare request hands the restore's needs to the restorer's Prepare and answers at
// once; with Ready it answers only once what Prepare started is ready, or fails
// saying so when its time ran out first.
func TestPreflightPrepareReady(t *testing.T) {
	pr := &preparingRestorer{ready: make(chan struct{})}
	n := newFakeNodeParts(t, "n1", dump.Fake{}, nil, func(p *worker.Parts) {
		pr.Restorer = p.Restorer
		p.Restorer = pr
	})
	cl := &worker.Client{Addr: n.w.Addr()}
	req := worker.PreflightRequest{Prepare: true}
	if _, err := cl.Preflight(context.Background(), req); err != nil {
		t.Fatalf("prepare without Ready: %v", err)
	}
	req.Ready = true
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Preflight(ctx, req); err == nil {
		t.Fatal("prepare with Ready answered while its keepers were not ready")
	}
	done := make(chan error, 1)
	go func() {
		_, err := cl.Preflight(context.Background(), req)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("prepare with Ready answered (%v) before its keepers were ready", err)
	default:
	}
	close(pr.ready)
	if err := <-done; err != nil {
		t.Fatalf("prepare with Ready once the keepers were ready: %v", err)
	}
	if got := pr.prepared.Load(); got != 3 {
		t.Fatalf("Prepare called %d times, want 3", got)
	}
}

// A Release request ends, through the restorer's Unprepare, what a Prepare of its
// containers started, checks nothing and prepares nothing.
func TestPreflightRelease(t *testing.T) {
	pr := &preparingRestorer{ready: make(chan struct{})}
	n := newFakeNodeParts(t, "n1", dump.Fake{}, nil, func(p *worker.Parts) {
		pr.Restorer = p.Restorer
		p.Restorer = pr
	})
	cl := &worker.Client{Addr: n.w.Addr()}
	req := worker.PreflightRequest{Release: true, Check: restore.Check{Containers: []restore.CheckContainer{{Key: "bank_holder.2", Name: "bank_holder-2-m1"}}},
		Sets: []worker.PreflightSet{{Set: "not-here"}}}
	rep, err := cl.Preflight(context.Background(), req)
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	if len(rep.Missing) != 0 || len(rep.Problems) != 0 {
		t.Fatalf("a release checked the request: %+v", rep)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if len(pr.unprepared) != 1 || pr.unprepared[0] != "bank_holder-2-m1" || pr.prepared.Load() != 0 {
		t.Fatalf("released %v, prepared %d times; want bank_holder-2-m1 released, nothing prepared", pr.unprepared, pr.prepared.Load())
	}
}

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
)

// softDirty makes a fake node whose kernel tracks soft-dirty pages.
func softDirty(p *worker.Parts) {
	p.Features = migrate.StaticFeatures{"mem_dirty_track": true, "uffd-noncoop": true}
}

// TestPreCopyLoopThenFinalDump: pre-copy against the fake dumper, in process and over
// the worker's HTTP API. PreCopy runs the policy's rounds while the container runs
// (pre-dump 0, then each chained onto the one before); the streamed final dump takes
// them into the set (PreDumps, every pre-dump's files hashed and sent with the
// others), keeps nothing else behind, and the target, whose set has regular files
// only, links the chain before its restore.
func TestPreCopyLoopThenFinalDump(t *testing.T) {
	a := newFakeNodeParts(t, "a", dump.Fake{}, nil, softDirty)
	b := newFakeNodeParts(t, "b", dump.Fake{}, nil, softDirty)
	ctx := context.Background()
	if ni, _ := a.w.Info(ctx); !ni.PreCopy.OK {
		t.Fatalf("a node with soft-dirty does not announce pre-copy: %+v", ni.PreCopy)
	}
	a.add("web", 7)
	a.add("api", 8)
	for i, s := range []interface {
		worker.PreCopier
		worker.Dumper
	}{a.w, &worker.Client{Addr: a.w.Addr()}} {
		name := []string{"web", "api"}[i]
		set := "mig." + name
		rep, err := s.PreCopy(ctx, name, set, b.w.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rounds) < 2 || rep.Rounds[0].Bytes != dump.FakePreDumpBytes(0) || rep.Why == "" {
			t.Fatalf("%s: report %+v: want the policy's rounds from a full pre-dump 0", name, rep)
		}
		// Sent ahead, while the container runs: a verified set of their own on b.
		if rep.SentTo != b.w.Addr() || rep.SendError != "" {
			t.Fatalf("%s: pre-dumps not sent ahead: %+v", name, rep)
		}
		ahead := filepath.Join(b.w.SetsDir(), ".precopy-"+set)
		if pm, err := imageset.Verify(ahead); err != nil || pm.PreDumps != len(rep.Rounds) {
			t.Fatalf("%s: the pre-dumps on the target: %+v %v", name, pm, err)
		}
		aheadIno := inode(t, filepath.Join(imageset.ImagesPath(ahead), "pre", "0", "pages-1.img"))
		m, err := s.DumpWith(ctx, name, set, worker.DumpOptions{StreamTo: b.w.Addr(), PreCopied: true})
		if err != nil {
			t.Fatal(err)
		}
		if m.PreDumps != len(rep.Rounds) {
			t.Fatalf("%s: the final dump took %d pre-dumps, PreCopy ran %d", name, m.PreDumps, len(rep.Rounds))
		}
		for k := range rep.Rounds {
			if _, ok := m.Lookup(imageset.PreDumpsDir + "/" + strconv.Itoa(k) + "/pages-1.img"); !ok {
				t.Fatalf("%s: pre-dump %d is not in the set's manifest: %+v", name, k, m.Files)
			}
		}
		got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), set))
		if err != nil || got.PreDumps != m.PreDumps || len(got.Files) != len(m.Files) {
			t.Fatalf("%s: received set %+v, %v", name, got, err)
		}
		for _, n := range []*fakeNode{a, b} {
			if _, err := os.Stat(filepath.Join(n.w.SetsDir(), ".precopy-"+set)); !os.IsNotExist(err) {
				t.Fatalf("%s: the pre-dumps' directory stays after the dump: %v", name, err)
			}
		}
		// The target adopted the pre-dumps it held (the same file), not a second copy.
		if got := inode(t, filepath.Join(b.w.SetsDir(), set, "images", "pre", "0", "pages-1.img")); got != aheadIno {
			t.Fatalf("%s: pre-dump 0 on the target is inode %d, the one sent ahead %d: streamed again", name, got, aheadIno)
		}
		if _, err := b.w.Restore(ctx, set, worker.RestoreOptions{}); err != nil {
			t.Fatalf("%s: restore of the pre-copied set: %v", name, err)
		}
		if c := b.restorer.PreDumpChains(); len(c) != i+1 || c[i] != m.PreDumps {
			t.Fatalf("%s: the target linked chains %v, want one of %d", name, c, m.PreDumps)
		}
		if err := b.w.RemoveContainer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// A dump asking for pre-dumps nobody kept is refused, before anything is dumped.
	if _, err := a.w.DumpWith(ctx, "web", "again.web", worker.DumpOptions{PreCopied: true}); !errors.Is(err, node.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no pre-dump") {
		t.Fatalf("dump without pre-dumps: %v", err)
	}
	// DropSet drops the pre-dumps of a set whose dump never came (an aborted snapshot).
	if _, err := a.w.PreCopy(ctx, "web", "aborted.web", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.w.DropSet(ctx, "aborted.web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a.w.SetsDir(), ".precopy-aborted.web")); !os.IsNotExist(err) {
		t.Fatalf("pre-dumps stay after DropSet: %v", err)
	}
}

// TestPreCopyRefusedWithoutSoftDirty: on a kernel without soft-dirty (this project's
// machines) PreCopy is refused with node.ErrNoSoftDirty, in process and over HTTP,
// naming the feature, and nothing is written.
func TestPreCopyRefusedWithoutSoftDirty(t *testing.T) {
	a := newFakeNode(t, "a")
	ctx := context.Background()
	a.add("web", 7)
	if ni, _ := a.w.Info(ctx); ni.PreCopy.OK || !strings.Contains(ni.PreCopy.Reason, "mem_dirty_track") {
		t.Fatalf("Info.PreCopy = %+v", ni.PreCopy)
	}
	for _, s := range []worker.PreCopier{a.w, &worker.Client{Addr: a.w.Addr()}} {
		_, err := s.PreCopy(ctx, "web", "mig.web", "")
		if !errors.Is(err, node.ErrNoSoftDirty) || !errors.Is(err, node.ErrFailedPrecondition) || !strings.Contains(err.Error(), "CONFIG_MEM_SOFT_DIRTY") {
			t.Fatalf("%T: %v", s, err)
		}
	}
	if entries, _ := os.ReadDir(a.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("a refused pre-copy left %v", entries)
	}
}

// failingPreDumps is the fake dumper whose pre-dump round 1 fails.
type failingPreDumps struct{ dump.Fake }

func (f failingPreDumps) PreDump(ctx context.Context, c container.Ref, images, work string, k int) (int64, error) {
	if k == 1 {
		return 0, fmt.Errorf("%w: criu: boom", dump.ErrCRIU)
	}
	return f.Fake.PreDump(ctx, c, images, work, k)
}

// TestPreCopyFailedRoundKeepsNothing: a pre-dump round that fails fails PreCopy,
// naming the round, and leaves no pre-dump behind (round 0's goes too).
func TestPreCopyFailedRoundKeepsNothing(t *testing.T) {
	a := newFakeNodeParts(t, "a", failingPreDumps{}, nil, softDirty)
	a.add("web", 7)
	if _, err := a.w.PreCopy(context.Background(), "web", "mig.web", ""); !errors.Is(err, migrate.ErrPreDump) || !errors.Is(err, dump.ErrCRIU) || !strings.Contains(err.Error(), "round 1") {
		t.Fatalf("PreCopy whose round 1 fails: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.w.SetsDir(), ".precopy-mig.web")); !os.IsNotExist(err) {
		t.Fatalf("a failed pre-copy left its pre-dumps: %v", err)
	}
}

// inode is the inode number of path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestPreCopyNotSentAheadStreamsWithTheSet: when the pre-dumps could not be sent
// ahead (the target refused them), they stream with the set, which arrives whole.
func TestPreCopyNotSentAheadStreamsWithTheSet(t *testing.T) {
	a := newFakeNodeParts(t, "a", dump.Fake{}, nil, softDirty)
	b := newFakeNodeParts(t, "b", dump.Fake{}, nil, softDirty)
	ctx := context.Background()
	a.add("web", 7)
	// A set of that name on b already: the send ahead is refused (409).
	if err := os.MkdirAll(filepath.Join(b.w.SetsDir(), ".precopy-mig.web"), 0o700); err != nil {
		t.Fatal(err)
	}
	rep, err := a.w.PreCopy(ctx, "web", "mig.web", b.w.Addr())
	if err != nil || rep.SentTo != "" || rep.SendError == "" {
		t.Fatalf("PreCopy whose send ahead fails: %+v %v, want the rounds kept and the send's error", rep, err)
	}
	if err := os.RemoveAll(filepath.Join(b.w.SetsDir(), ".precopy-mig.web")); err != nil {
		t.Fatal(err)
	}
	m, err := a.w.DumpWith(ctx, "web", "mig.web", worker.DumpOptions{StreamTo: b.w.Addr(), PreCopied: true})
	if err != nil || m.PreDumps != len(rep.Rounds) {
		t.Fatalf("dump: %+v %v", m, err)
	}
	got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "mig.web"))
	if err != nil || len(got.Files) != len(m.Files) || got.PreDumps != m.PreDumps {
		t.Fatalf("received set: %+v %v, want all %d files", got, err, len(m.Files))
	}
}

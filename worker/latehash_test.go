package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// directSet dumps a new container of a into set id on b (DumpInto, b with the default
// page digests: after the restore) and returns b's directory of the set.
func directSet(t *testing.T, a, b *fakeNode, name, id string) string {
	t.Helper()
	a.add(name, 7)
	if _, err := a.w.DumpInto(context.Background(), name, id, b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(b.w.SetsDir(), id)
}

// unhashedOnDisk fails unless the manifest of set marks its pages unhashed (and Verify,
// what a worker that starts afresh does, refuses the set).
func unhashedOnDisk(t *testing.T, set string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(set, imageset.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), `"pagesUnhashed": true`) {
		t.Fatalf("manifest of %s does not mark its pages unhashed:\n%s", set, m)
	}
	if _, err := imageset.Verify(set); !errors.Is(err, imageset.ErrUnhashed) {
		t.Fatalf("Verify of %s: %v, want ErrUnhashed", set, err)
	}
}

// TestDirectSetHashedAfterItsRestore: the set a direct transfer leaves is unverified on
// disk until its restore ran; the restore does not wait for the hash; then the pages
// are hashed in the background and recorded in the manifest (files 0600), after which
// a restore from it verifies as for any set.
func TestDirectSetHashedAfterItsRestore(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", &killRecorder{}), newFakeNode(t, "b")
	ctx := context.Background()
	set := directSet(t, a, b, "web", "mig.web")
	unhashedOnDisk(t, set)
	m, err := imageset.ReadManifest(set)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.Lookup("pages-1.img"); !ok || f.SHA256 != "" || f.Size == 0 {
		t.Fatalf("pages-1.img as received: %+v %v, want its size and no digest yet", f, ok)
	}
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web", Keep: true}); err != nil {
		t.Fatalf("the restore that follows the transfer: %v", err)
	}
	if err := b.w.AwaitDigests(ctx, "mig.web"); err != nil {
		t.Fatal(err)
	}
	got, err := imageset.Verify(set)
	if err != nil {
		t.Fatalf("set after its pages were hashed: %v", err)
	}
	if got.PagesUnhashed || got.PagesReceivedBy != "b" {
		t.Fatalf("manifest after the hash: %+v", got)
	}
	for _, f := range got.Files {
		fi, err := os.Stat(filepath.Join(imageset.ImagesPath(set), f.Name))
		if err != nil || fi.Mode().Perm() != imageset.FileMode {
			t.Errorf("%s: %v mode %v, want %v", f.Name, err, fi.Mode().Perm(), imageset.FileMode)
		}
	}
	if fi, _ := os.Stat(filepath.Join(set, imageset.ManifestName)); fi.Mode().Perm() != imageset.FileMode {
		t.Errorf("manifest mode %v", fi.Mode().Perm())
	}
	if err := b.w.RemoveContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web2"}); err != nil {
		t.Fatalf("a later restore from the hashed set: %v", err)
	}
}

// TestDirectSetSecondRestoreWaitsForTheHash: a restore that is not the first after the
// transfer waits for the pages' hash (starting it at once) and then verifies them.
func TestDirectSetSecondRestoreWaitsForTheHash(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", &killRecorder{}), newFakeNode(t, "b")
	ctx := context.Background()
	set := directSet(t, a, b, "web", "mig.web")
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web", Keep: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.w.RemoveContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web2", Keep: true}); err != nil {
		t.Fatalf("second restore: %v", err)
	}
	// It returned after the hash was recorded, not before.
	if _, err := imageset.Verify(set); err != nil {
		t.Fatalf("set right after the second restore: %v, want verified", err)
	}
}

// TestDirectSetUnhashedWhenItsWorkerEnded: a worker that ends before the hash finished
// (here: before the restore, so it never started) leaves the set marked, with the
// stamps its page files had when they arrived. The worker that runs next resumes the
// hash from those stamps (the set is then verified and restores; SetDigests reports
// its digests); a page file changed meanwhile is not hashed: the set stays refused,
// saying why, and SetDigests says it never will be (node.ErrPagesUnhashed).
func TestDirectSetUnhashedWhenItsWorkerEnded(t *testing.T) {
	restart := func(t *testing.T, b *fakeNode, meanwhile func()) *fakeNode {
		t.Helper()
		if err := b.w.Close(); err != nil {
			t.Fatal(err)
		}
		meanwhile()
		dataRoot := filepath.Dir(filepath.Dir(b.w.SetsDir()))
		b2 := newFakeNodeConfig(t, "b", dump.Fake{}, func(c *worker.Config) { c.DataRoot = dataRoot })
		if b2.w.SetsDir() != b.w.SetsDir() {
			t.Fatalf("new worker's sets %s, want %s", b2.w.SetsDir(), b.w.SetsDir())
		}
		return b2
	}
	t.Run("Resumed", func(t *testing.T) {
		a, b := newFakeNodeDumper(t, "a", &killRecorder{}), newFakeNode(t, "b")
		ctx := context.Background()
		set := directSet(t, a, b, "web", "mig.web")
		unhashedOnDisk(t, set)
		b2 := restart(t, b, func() {})
		m, err := b2.w.SetDigests(ctx, "mig.web")
		if err != nil {
			t.Fatalf("digests of a set the previous worker left unhashed: %v, want them resumed", err)
		}
		if f, ok := m.Lookup("pages-1.img"); !ok || len(f.SHA256) != 64 || m.PagesUnhashed || m.PagesReceived != nil {
			t.Fatalf("manifest after the resumed hash: %+v", m)
		}
		if _, err := imageset.Verify(set); err != nil {
			t.Fatalf("set after the resumed hash: %v, want verified", err)
		}
		if _, err := b2.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web", Keep: true}); err != nil {
			t.Fatalf("restore after the resumed hash: %v", err)
		}
	})
	t.Run("ChangedMeanwhile", func(t *testing.T) {
		a, b := newFakeNodeDumper(t, "a", &killRecorder{}), newFakeNode(t, "b")
		set := directSet(t, a, b, "web", "mig.web")
		b2 := restart(t, b, func() {
			// Same size, another mtime: not what arrived any more.
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(imageset.ImagesPath(set), "pages-1.img"), later, later); err != nil {
				t.Fatal(err)
			}
		})
		ctx := context.Background()
		_, err := b2.w.SetDigests(ctx, "mig.web")
		if !errors.Is(err, node.ErrPagesUnhashed) || !errors.Is(err, imageset.ErrUnhashed) {
			t.Fatalf("digests of a set whose page file changed after it arrived: %v, want ErrPagesUnhashed", err)
		}
		unhashedOnDisk(t, set)
		_, err = b2.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web", Keep: true})
		if !errors.Is(err, imageset.ErrUnhashed) || !strings.Contains(err.Error(), "refusing to restore") || !strings.Contains(err.Error(), "not been hashed") {
			t.Fatalf("restore of a set whose pages were never hashed: %v, want a refusal naming ErrUnhashed", err)
		}
		unhashedOnDisk(t, set) // the refusal changed nothing
	})
}

// TestDirectSetCorruptedAfterTheHashIsRefused: a byte of the pages changed after their
// digests were recorded is caught by the next restore.
func TestDirectSetCorruptedAfterTheHashIsRefused(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", &killRecorder{}), newFakeNode(t, "b")
	ctx := context.Background()
	set := directSet(t, a, b, "web", "mig.web")
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web", Keep: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.w.AwaitDigests(ctx, "mig.web"); err != nil {
		t.Fatal(err)
	}
	if err := b.w.RemoveContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(imageset.ImagesPath(set), "pages-1.img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := b.w.Restore(ctx, "mig.web", worker.RestoreOptions{Name: "web2"}); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("restore of a set corrupted after its hash: %v, want ErrChecksum", err)
	}
}

// TestDirectSetHashedOnArrivalWhenAsked: a target with --page-digests on-arrival
// records the digests before it answers, as before.
func TestDirectSetHashedOnArrivalWhenAsked(t *testing.T) {
	a := newFakeNodeDumper(t, "a", &killRecorder{})
	b := newFakeNodeConfig(t, "b", dump.Fake{}, func(c *worker.Config) { c.PageDigests = worker.PageDigestsOnArrival })
	set := directSet(t, a, b, "web", "mig.web")
	m, err := imageset.Verify(set)
	if err != nil || m.PagesUnhashed {
		t.Fatalf("set hashed on arrival: %+v %v", m, err)
	}
}

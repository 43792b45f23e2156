package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// TestPlacedTaskLockIsJournaledOnceItsContainerRuns: a swarm task's container is not
// known when its set is placed; the worker learns it when the wrapper claims the
// placement and journals the task's lock once it runs (so the watchdog can unlock it if
// the coordinator dies); UnplaceTask names the container that claimed it; the
// coordinator's Unlock clears the hold; the set stays in the sets directory.
func TestPlacedTaskLockIsJournaledOnceItsContainerRuns(t *testing.T) {
	dir := t.TempDir()
	insp, lock := container.NewFake(), netlock.NewFake()
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot = filepath.Join(dir, "data")
	cfg.JournalDir = filepath.Join(dir, "journal")
	cfg.WatchdogArgv = watchdogArgv(t)
	placer := &restore.Docker{DataRoot: cfg.DataRoot}
	w, err := worker.New(cfg, worker.Parts{Inspector: insp, Locker: lock, Freezer: freezer.NewFake(), Dumper: dump.Fake{},
		Restorer: restore.NewFake(filepath.Join(dir, "consumed"), "img"), Placer: placer, Features: migrate.StaticFeatures{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(cfg.JournalDir) })
	ctx := context.Background()

	// An image set with a (socket-less) CRIU files.img, as a dump leaves it.
	set := filepath.Join(w.SetsDir(), "snap.st_web.1")
	if _, err := (dump.Fake{}).Dump(ctx, container.Ref{ID: "old", Pid: 1}, container.Spec{Image: "img"}, set, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(imageset.ImagesPath(set), "files.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crit.New(nil, f, "", false, false).Encode(&crit.CriuImage{Magic: "FILES"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := imageset.ReadManifest(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := imageset.Seal(set, m); err != nil {
		t.Fatal(err)
	}

	lockUntil := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	if _, err := w.PlaceTask(ctx, "snap.st_web.1", worker.TaskOptions{Service: "st_web", Slot: 1, LockUntil: lockUntil,
		AddressMapUntil: time.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	placed := filepath.Join(placer.Area(), ociwrap.ForTask("st_web", 1))
	for _, f := range []string{ociwrap.LockFile, ociwrap.AddressWaitFile, ociwrap.ExpiresFile} {
		if _, err := os.Stat(filepath.Join(placed, f)); err != nil {
			t.Fatalf("placement lacks %s: %v", f, err)
		}
	}
	if _, err := imageset.Check(set); err != nil {
		t.Fatalf("the set must stay restorable in the sets directory: %v", err)
	}

	// The wrapper claims the placement for a new task container, which comes up locked.
	task := container.Ref{ID: "7a5c0000000000000000000000000000000000000000000000000000000000ff", Name: "st_web.1.abc", Pid: 77}
	if err := os.Rename(placed, placed+".restoring-"+task.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.SetAddressMap(ctx, "st_web", 1, map[string]string{"10.0.9.5": "10.0.9.17"}); err != nil {
		t.Fatalf("address map into the claimed placement: %v", err)
	}
	insp.Add(task, container.Spec{Name: task.Name, Image: "img"})
	if err := lock.Lock(ctx, task, nil); err != nil {
		t.Fatal(err)
	}
	j := watchdog.Journal{Dir: cfg.JournalDir}
	waitFor(t, "the task's lock journaled", func() bool {
		h, ok, err := j.Get(task.ID)
		return err == nil && ok && h.Locked && h.Pid == 77 && !h.Deadline.After(lockUntil) && h.Deadline.After(time.Now())
	})
	rel, err := w.UnplaceTask(ctx, "st_web", 1, "snap.st_web.1")
	if err != nil || rel.Removed || rel.Claimed != task.ID {
		t.Fatalf("unplace of a claimed placement: %+v %v, want claimed by %s and nothing removed", rel, err, task.ID)
	}
	if err := w.Unlock(ctx, task.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := j.Get(task.ID); ok {
		t.Fatal("hold still journaled after Unlock")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

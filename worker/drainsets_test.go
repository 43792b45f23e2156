package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

func TestExpiredDrainSets(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ttl := worker.DrainSetTTL
	old, fresh := now.Add(-ttl-time.Minute), now.Add(-ttl+time.Minute)
	mod := map[string]time.Time{"drain.noms": old, "drain.noms-fresh": fresh, "snap.web.1": old}
	names := []string{
		fmt.Sprintf("drain.echo_client.1.%d", old.UnixMilli()),   // past its retention
		fmt.Sprintf("drain.echo_client.1.%d", fresh.UnixMilli()), // not yet
		"drain.noms",       // no UNIXMS: its mtime, old
		"drain.noms-fresh", // its mtime, fresh
		"drain.gone",       // neither: kept
		"snap.web.1",       // a snapshot's set: never
		fmt.Sprintf(".incoming-drain.x.%d", old.UnixMilli()),
	}
	got := worker.ExpiredDrainSets(names, now, ttl, func(n string) (time.Time, bool) { t, ok := mod[n]; return t, ok })
	want := []string{names[0], "drain.noms"}
	if !slices.Equal(got, want) {
		t.Errorf("ExpiredDrainSets = %v, want %v", got, want)
	}
}

// TestStartDropsOldDrainSets: a worker that starts drops the drain sets past their
// retention (the source's copy of a streamed drain, an unplaced direct set) and keeps
// younger drain sets and every other set, old or not.
func TestStartDropsOldDrainSets(t *testing.T) {
	dir := t.TempDir()
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot, cfg.JournalDir, cfg.WatchdogArgv = filepath.Join(dir, "data"), filepath.Join(dir, "journal"), watchdogArgv(t)
	w, err := worker.New(cfg, worker.Parts{Inspector: container.NewFake(), Locker: netlock.NewFake(), Freezer: freezer.NewFake(), Dumper: dump.Fake{},
		Restorer: restore.NewFake(filepath.Join(dir, "consumed"), "img"), Placer: &restore.Docker{DataRoot: cfg.DataRoot}, Features: migrate.StaticFeatures{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	oldDrain := fmt.Sprintf("drain.web.1.%d", now.Add(-worker.DrainSetTTL-time.Hour).UnixMilli())
	newDrain := fmt.Sprintf("drain.web.1.%d", now.Add(-time.Hour).UnixMilli())
	oldSnap := "snap.web.1"
	for _, n := range []string{oldDrain, newDrain, oldSnap} {
		if err := os.MkdirAll(filepath.Join(w.SetsDir(), n, "images"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	longAgo := now.Add(-2 * worker.DrainSetTTL)
	if err := os.Chtimes(filepath.Join(w.SetsDir(), oldSnap), longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(cfg.JournalDir) })
	if _, err := os.Stat(filepath.Join(w.SetsDir(), oldDrain)); !os.IsNotExist(err) {
		t.Errorf("drain set %s, past its retention, is still there after Start (stat: %v)", oldDrain, err)
	}
	for _, n := range []string{newDrain, oldSnap} {
		if _, err := os.Stat(filepath.Join(w.SetsDir(), n)); err != nil {
			t.Errorf("set %s was dropped by Start: %v", n, err)
		}
	}
}

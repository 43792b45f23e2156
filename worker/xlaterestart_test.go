package worker_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// A worker that restarts reloads the translations it kept from
// <data-root>/swarmckpt/xlate.json and goes on polling them: the rules stayed in the
// container's namespace (the same Translator here), and the new worker removes the
// translation once no connection uses the old address any more.
func TestTranslationsSurviveAWorkerRestart(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	dataRoot := filepath.Join(dir, "data")
	t.Cleanup(func() { os.RemoveAll(journal) }) // makes the watchdog process exit
	ctx := context.Background()
	insp, xl := container.NewFake(), xlate.NewFake()
	ref := container.Ref{ID: strings.Repeat("c", 64), Name: "peer", Pid: 4242}
	insp.Add(ref, container.Spec{Name: "peer", Image: "img"})
	old, new := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.12")
	xl.SetInUse(ref, old, true)
	start := func() *worker.Worker {
		t.Helper()
		cfg := worker.DefaultConfig("n1")
		cfg.DataRoot, cfg.JournalDir, cfg.WatchdogArgv, cfg.XlatePoll = dataRoot, journal, watchdogArgv(t), 20*time.Millisecond
		w, err := worker.New(cfg, worker.Parts{Inspector: insp, Locker: netlock.NewFake(), Freezer: freezer.NewFake(), Dumper: dump.Fake{}, Xlate: xl})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w1 := start()
	if err := w1.Translate(ctx, "peer", old, new); err != nil {
		t.Fatal(err)
	}
	w1.Close()

	w2 := start()
	t.Cleanup(func() { w2.Close() })
	ts, err := w2.Translations(ctx)
	if err != nil || len(ts) != 1 || ts[0].ContainerID != ref.ID || ts[0].Name != "peer" || ts[0].Old != old || ts[0].New != new || ts[0].Since.IsZero() {
		t.Fatalf("translations of the restarted worker: %+v %v, want peer's %v -> %v from before the restart", ts, err, old, new)
	}
	if rules, _ := xl.Rules(ctx, ref); len(rules) != 1 {
		t.Fatalf("rules in the namespace after the restart: %v, want the one kept", rules)
	}
	// The last connection to the old address ends: the restarted worker's poll
	// removes the rule and its record.
	xl.SetInUse(ref, old, false)
	for deadline := time.Now().Add(10 * time.Second); ; {
		ts, _ := w2.Translations(ctx)
		rules, _ := xl.Rules(ctx, ref)
		if len(ts) == 0 && len(rules) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the old address went unused: translations %+v, rules %v, want none", ts, rules)
		}
		time.Sleep(20 * time.Millisecond) // polling the worker's poll
	}
	b, err := os.ReadFile(filepath.Join(dataRoot, "swarmckpt", "xlate.json"))
	var rec []worker.Translation
	if err != nil || json.Unmarshal(b, &rec) != nil || len(rec) != 0 {
		t.Fatalf("xlate.json after the removal: %q %v, want an empty list", b, err)
	}
}

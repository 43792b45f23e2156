package worker_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// A translation goes with its container: once the container no longer runs, the
// worker's poll forgets it (its namespace, and the rules in it, went with it), even
// while the translator would still call the old address in use.
func TestTranslationGoesWithItsContainer(t *testing.T) {
	xl := xlate.NewFake()
	n := newFakeNodeParts(t, "n1", dump.Fake{}, func(c *worker.Config) { c.XlatePoll = 10 * time.Millisecond },
		func(p *worker.Parts) { p.Xlate = xl })
	ctx := context.Background()
	ref := n.add("peer", 321)
	old, new := netip.MustParseAddr("10.9.0.7"), netip.MustParseAddr("10.9.0.17")
	xl.SetInUse(ref, old, true)
	if err := n.w.Translate(ctx, "peer", old, new); err != nil {
		t.Fatal(err)
	}
	if rules, _ := xl.Rules(ctx, ref); len(rules) != 1 || rules[0].Old != old || rules[0].New != new {
		t.Fatalf("rules in the namespace: %v, want %v -> %v", rules, old, new)
	}
	if ts, _ := n.w.Translations(ctx); len(ts) != 1 || ts[0].ContainerID != ref.ID || ts[0].Name != "peer" {
		t.Fatalf("translations: %+v, want the one of peer", ts)
	}
	n.add("peer", 0) // the container ended
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts, _ := n.w.Translations(ctx)
		if len(ts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("translation of an ended container kept: %+v", ts)
		}
		time.Sleep(10 * time.Millisecond) // polling the worker's poll
	}
}

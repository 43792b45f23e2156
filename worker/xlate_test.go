package worker_test

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
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

// blockingInspector answers nothing about one container while block is set, as
// Docker answers nothing about a container whose stop the runtime wrapper holds.
type blockingInspector struct {
	container.Inspector
	id    string
	block *atomic.Bool
}

func (b blockingInspector) Resolve(ctx context.Context, nameOrID string) (container.Ref, error) {
	if b.block.Load() && (nameOrID == b.id || strings.HasPrefix(b.id, nameOrID)) {
		<-ctx.Done()
		return container.Ref{}, ctx.Err()
	}
	return b.Inspector.Resolve(ctx, nameOrID)
}

// A container whose stop is held (Docker does not answer about it) does not hold up
// the translations of the others: the poll looks at each container without the
// worker's lock (demo-drain: a held holder's translations kept the poll waiting, and
// every xlate on its node timed out, for the whole hold).
func TestTranslateWhileAContainerDoesNotAnswer(t *testing.T) {
	xl := xlate.NewFake()
	block := &atomic.Bool{}
	var held container.Ref
	n := newFakeNodeParts(t, "n1", dump.Fake{}, func(c *worker.Config) { c.XlatePoll = 10 * time.Millisecond },
		func(p *worker.Parts) {
			p.Xlate = xl
			p.Inspector = blockingInspector{Inspector: p.Inspector, id: strings.Repeat("held", 17)[:64], block: block}
		})
	ctx := context.Background()
	held = n.add("held", 321)
	peer := n.add("peer", 322)
	a, b := netip.MustParseAddr("10.9.0.7"), netip.MustParseAddr("10.9.0.17")
	xl.SetInUse(held, a, true)
	if err := n.w.Translate(ctx, "held", a, b); err != nil {
		t.Fatal(err)
	}
	block.Store(true)
	time.Sleep(50 * time.Millisecond) // several polls (10 ms) reach the held container: nothing to wait for
	c, d := netip.MustParseAddr("10.9.0.8"), netip.MustParseAddr("10.9.0.18")
	xl.SetInUse(peer, c, true)
	done := make(chan error, 1)
	go func() { done <- n.w.Translate(ctx, "peer", c, d) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("Translate in another container waited for the one Docker does not answer about")
	}
	block.Store(false)
}

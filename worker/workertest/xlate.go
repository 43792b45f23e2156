package workertest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// Translations: a translation is kept while a socket of the container uses the old
// address, and removed by the worker by itself once none does; bad pairs are
// ErrInvalidArgument.
func testTranslations(t *testing.T, f Factory) {
	a, _ := f(t)
	if a.Roles.Translations == nil || a.XlateInUse == nil {
		t.Skip("SKIP: this implementation has no Translations (or the factory no XlateInUse)")
	}
	x, ctx := a.Roles.Translations, context.Background()
	ctr := a.Container(t)
	old, new := netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("10.77.0.9")
	a.XlateInUse(t, ctr, old, true)
	if err := x.Translate(ctx, ctr, old, new); err != nil {
		t.Fatalf("Translate(%s, %v, %v): %v", ctr, old, new, err)
	}
	if err := x.Translate(ctx, ctr, old, new); err != nil {
		t.Fatalf("Translate again (idempotent): %v", err)
	}
	for _, bad := range [][2]string{{"10.77.0.5", "10.77.0.5"}, {"127.0.0.1", "10.77.0.9"}, {"10.77.0.6", "10.77.0.9"}, {"10.77.0.6", "fd00::1"}} {
		err := x.Translate(ctx, ctr, netip.MustParseAddr(bad[0]), netip.MustParseAddr(bad[1]))
		if !errors.Is(err, node.ErrInvalidArgument) {
			t.Errorf("Translate(%s -> %s): %v, want ErrInvalidArgument", bad[0], bad[1], err)
		}
	}
	find := func() (worker.Translation, bool) {
		ts, err := x.Translations(ctx)
		if err != nil {
			t.Fatalf("Translations: %v", err)
		}
		for _, tr := range ts {
			if tr.Old == old {
				return tr, true
			}
		}
		return worker.Translation{}, false
	}
	tr, ok := find()
	if !ok || tr.New != new || tr.ContainerID == "" {
		t.Fatalf("Translations after Translate: %+v (found %v), want %v -> %v", tr, ok, old, new)
	}
	// The moved peer moves again (new -> newer): the container's sockets still know
	// it as old, so old now goes to newer, and nothing translates new.
	newer := netip.MustParseAddr("10.77.0.11")
	if err := x.Translate(ctx, ctr, new, newer); err != nil {
		t.Fatalf("Translate(%s, %v, %v) (moved again): %v", ctr, new, newer, err)
	}
	if tr, ok = find(); !ok || tr.New != newer {
		t.Fatalf("Translations after the peer moved again: %+v (found %v), want %v -> %v", tr, ok, old, newer)
	}
	if ts, _ := x.Translations(ctx); len(ts) != 1 {
		t.Fatalf("Translations after the peer moved again: %+v, want only %v -> %v", ts, old, newer)
	}
	// Still in use: kept over several polls.
	time.Sleep(100 * time.Millisecond) // several polls of the suite's workers (20 ms): nothing to wait for
	if _, ok := find(); !ok {
		t.Fatal("translation removed while a socket still used the old address")
	}
	a.XlateInUse(t, ctr, old, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := find(); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("translation kept 5 s after no socket used the old address")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := x.Translate(ctx, "no-such-container-here", old, new); !a.AnyContainer && !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Translate in a missing container: %v, want ErrNotFound", err)
	}
}

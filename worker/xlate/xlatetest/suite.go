// Package xlatetest is the conformance suite every xlate.Translator must pass.
package xlatetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// Target gives the suite a fresh container (or network namespace); cleanup is
// registered by the factory with t.Cleanup.
type Target func(t *testing.T) container.Ref

// Run runs the suite against tr.
func Run(t *testing.T, tr xlate.Translator, target Target) {
	ctx := context.Background()
	a, b, c4 := netip.MustParseAddr("10.12.0.2"), netip.MustParseAddr("10.12.0.9"), netip.MustParseAddr("10.12.0.10")
	d, e := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::9")
	want := func(t *testing.T, c container.Ref, rules ...xlate.Rule) {
		t.Helper()
		got, err := tr.Rules(ctx, c)
		if err != nil {
			t.Fatalf("Rules: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(rules) {
			t.Fatalf("rules = %v, want %v", got, rules)
		}
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("starts empty, nothing in use", func(t *testing.T) {
		c := target(t)
		want(t, c)
		if used, err := tr.InUse(ctx, c, a); err != nil || used {
			t.Fatalf("InUse of a fresh namespace = %v, %v", used, err)
		}
	})
	t.Run("add, idempotent, replace, remove", func(t *testing.T) {
		c := target(t)
		must(t, tr.Add(ctx, c, a, b))
		must(t, tr.Add(ctx, c, a, b))
		want(t, c, xlate.Rule{Old: a, New: b})
		must(t, tr.Add(ctx, c, a, c4))
		want(t, c, xlate.Rule{Old: a, New: c4})
		must(t, tr.Remove(ctx, c, a))
		want(t, c)
		must(t, tr.Remove(ctx, c, a)) // nothing to remove: fine
		want(t, c)
	})
	t.Run("both families side by side", func(t *testing.T) {
		c := target(t)
		must(t, tr.Add(ctx, c, d, e))
		must(t, tr.Add(ctx, c, a, b))
		want(t, c, xlate.Rule{Old: a, New: b}, xlate.Rule{Old: d, New: e})
		must(t, tr.Remove(ctx, c, d))
		want(t, c, xlate.Rule{Old: a, New: b})
	})
	t.Run("bad and conflicting translations are refused, nothing changed", func(t *testing.T) {
		c := target(t)
		must(t, tr.Add(ctx, c, a, b))
		for _, bad := range [][2]netip.Addr{{a, d}, {a, a}, {netip.MustParseAddr("127.0.0.1"), b}, {{}, b}} {
			if err := tr.Add(ctx, c, bad[0], bad[1]); !errors.Is(err, xlate.ErrBadRule) {
				t.Errorf("Add(%v, %v) = %v, want ErrBadRule", bad[0], bad[1], err)
			}
		}
		if err := tr.Add(ctx, c, c4, b); !errors.Is(err, xlate.ErrConflict) {
			t.Errorf("a second old address onto %v: %v, want ErrConflict", b, err)
		}
		want(t, c, xlate.Rule{Old: a, New: b})
	})
	t.Run("a moved container that moves again chains", func(t *testing.T) {
		c := target(t)
		must(t, tr.Add(ctx, c, a, b)) // first move: a -> b
		must(t, tr.Add(ctx, c, b, c4))
		want(t, c, xlate.Rule{Old: a, New: c4}) // the sockets know a: a -> c4
		must(t, tr.Add(ctx, c, c4, a))          // back at its first address
		want(t, c)
	})
	t.Run("namespaces are separate", func(t *testing.T) {
		c1, c2 := target(t), target(t)
		must(t, tr.Add(ctx, c1, a, b))
		want(t, c2)
	})
}

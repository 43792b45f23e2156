// Package freezertest is the conformance suite every freezer.Freezer must pass.
package freezertest

import (
	"context"
	"errors"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
)

// Target returns a fresh running container; Running reports whether its processes make
// progress (for fakes, return nil to skip that check).
type Target func(t *testing.T) (c container.Ref, progressing func() bool)

// Run runs the suite against f.
func Run(t *testing.T, f freezer.Freezer, target Target) {
	ctx := context.Background()
	frozen := func(t *testing.T, c container.Ref, want bool) {
		t.Helper()
		got, err := f.Frozen(ctx, c)
		if err != nil || got != want {
			t.Fatalf("Frozen = %v, %v; want %v", got, err, want)
		}
	}
	t.Run("freeze thaw idempotent", func(t *testing.T) {
		c, progressing := target(t)
		frozen(t, c, false)
		for i := 0; i < 2; i++ {
			if err := f.Freeze(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		frozen(t, c, true)
		if progressing != nil && progressing() {
			t.Fatal("processes still make progress while frozen")
		}
		for i := 0; i < 2; i++ {
			if err := f.Thaw(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		frozen(t, c, false)
		if progressing != nil && !progressing() {
			t.Fatal("processes make no progress after thaw")
		}
	})
	t.Run("gone container", func(t *testing.T) {
		c := container.Ref{ID: "gone", Pid: 0}
		if err := f.Freeze(ctx, c); !errors.Is(err, freezer.ErrNoCgroup) {
			t.Fatalf("Freeze of a gone container: %v, want ErrNoCgroup", err)
		}
	})
}

package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// OpHeld (a CLI whose coordinator restarted during a snapshot asks the new one) names
// each container of the snapshot still held on its node, and nothing once they are
// released; an unknown snapshot is not found.
func TestHeldNamesWhatIsStillHeld(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "the commit's release of every container", func() bool { return len(e.held()) == 0 })
	e.execs["lab-2"].Hold("ctr2") // as a dead coordinator's snapshot may leave it
	res, err := api.Call[api.HeldResult](ctx, e.client, api.OpHeld, api.HeldRequest{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Held) != 1 || !strings.Contains(res.Held[0], "bank_holder.2 on lab-2: frozen and network-locked") {
		t.Fatalf("held %q, want bank_holder.2 on lab-2 frozen and network-locked", res.Held)
	}
	ex := e.execs["lab-2"]
	if err := errors.Join(ex.Thaw(ctx, "ctr2"), ex.Unlock(ctx, "ctr2", nil)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err = api.Call[api.HeldResult](ctx, e.client, api.OpHeld, api.HeldRequest{ID: "s1"})
	if err != nil || len(res.Held) != 0 {
		t.Fatalf("after the release: %q %v, want nothing held", res.Held, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("nothing held, yet the answer took %v (it waits only while something is held)", d)
	}
	if _, err := api.Call[api.HeldResult](ctx, e.client, api.OpHeld, api.HeldRequest{ID: "nosuch"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown snapshot: %v, want not found", err)
	}
}

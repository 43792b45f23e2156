// Package restoretest is the conformance suite every restore.Restorer must pass.
package restoretest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// Env is what the suite needs from an implementation's test.
type Env struct {
	Restorer restore.Restorer
	// Set dumps a running container whose spec was passed through mutate (to pin an IP,
	// or to name a missing image) and returns its verified set. leaveRunning keeps the
	// source running (and its IP taken).
	Set func(t *testing.T, leaveRunning bool, mutate func(*container.Spec)) imageset.Verified
	// Exists tells whether a container of that name exists on the target node.
	Exists func(t *testing.T, name string) bool
	// Name returns a fresh container name, removed at the end of the test.
	Name func(t *testing.T) string
	// Layer, when set, dumps (with exit) a container whose processes wrote into its own
	// filesystem (and deleted a file of its image), and returns its verified set and a
	// check that the restored container named name has that filesystem: the writable
	// layer carried in the set. Nil: the implementation has no filesystems (the subtest
	// says so and skips).
	Layer func(t *testing.T) (v imageset.Verified, check func(t *testing.T, name string))
}

// Run runs the suite.
func Run(t *testing.T, e Env) {
	ctx := context.Background()
	t.Run("restores and consumes the set", func(t *testing.T) {
		v := e.Set(t, false, nil)
		name := e.Name(t)
		ref, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if ref.Pid <= 0 || ref.Name != name || !e.Exists(t, name) {
			t.Fatalf("restored ref %+v, exists %v", ref, e.Exists(t, name))
		}
		if _, err := os.Stat(v.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("set %s still there after a successful restore", v.Dir())
		}
	})
	t.Run("keep restores from a copy and leaves the set restorable", func(t *testing.T) {
		v := e.Set(t, false, nil)
		name := e.Name(t)
		ref, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name, Keep: true})
		if err != nil {
			t.Fatal(err)
		}
		if ref.Pid <= 0 || !e.Exists(t, name) {
			t.Fatalf("restored ref %+v, exists %v", ref, e.Exists(t, name))
		}
		again, err := imageset.Check(v.Dir())
		if err != nil {
			t.Fatalf("set not intact after a restore with Keep: %v", err)
		}
		if err := e.Restorer.Remove(ctx, ref.ID); err != nil {
			t.Fatal(err)
		}
		ref, err = e.Restorer.Restore(ctx, again, restore.Options{Name: name})
		if err != nil {
			t.Fatalf("second restore of the kept set: %v", err)
		}
		if ref.Pid <= 0 || !e.Exists(t, name) {
			t.Fatalf("second restore: ref %+v, exists %v", ref, e.Exists(t, name))
		}
		if _, err := os.Stat(v.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("set %s still there after a restore without Keep", v.Dir())
		}
	})
	t.Run("remove undoes a restore and is idempotent", func(t *testing.T) {
		v := e.Set(t, false, nil)
		name := e.Name(t)
		ref, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Restorer.Remove(ctx, ref.ID); err != nil {
			t.Fatal(err)
		}
		if e.Exists(t, name) {
			t.Fatal("container still there after Remove")
		}
		if err := e.Restorer.Remove(ctx, ref.ID); err != nil {
			t.Fatalf("second Remove: %v, want nil", err)
		}
	})
	t.Run("address taken: error, nothing left, set kept", func(t *testing.T) {
		v := e.Set(t, true, nil)
		name := e.Name(t)
		_, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name})
		if !errors.Is(err, restore.ErrIPTaken) {
			t.Fatalf("err = %v, want ErrIPTaken", err)
		}
		if e.Exists(t, name) {
			t.Fatal("half-restored container left behind")
		}
		if _, err := imageset.Verify(v.Dir()); err != nil {
			t.Fatalf("set not intact after a failed restore: %v", err)
		}
	})
	t.Run("image missing on target", func(t *testing.T) {
		v := e.Set(t, false, func(s *container.Spec) { s.Image = "swarmckpt/absent:never" })
		name := e.Name(t)
		if _, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name}); !errors.Is(err, restore.ErrNoImage) {
			t.Fatalf("err = %v, want ErrNoImage", err)
		}
		if e.Exists(t, name) {
			t.Fatal("container left behind")
		}
	})
	t.Run("writable layer restored", func(t *testing.T) {
		if e.Layer == nil {
			t.Skip("SKIP: this Restorer has no container filesystems (Env.Layer nil); the real one is checked by TestDockerConformance")
		}
		v, check := e.Layer(t)
		if _, ok := v.Manifest().Lookup("rootfs-diff.tar"); !ok {
			t.Fatalf("set %s lists no rootfs-diff.tar: the dump did not carry the writable layer", v.Dir())
		}
		name := e.Name(t)
		ref, err := e.Restorer.Restore(ctx, v, restore.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if ref.Pid <= 0 {
			t.Fatalf("restored ref %+v", ref)
		}
		check(t, name)
	})
	t.Run("unverified set refused", func(t *testing.T) {
		if _, err := e.Restorer.Restore(ctx, imageset.Verified{}, restore.Options{}); !errors.Is(err, restore.ErrUnverified) {
			t.Fatalf("err = %v, want ErrUnverified", err)
		}
	})
}

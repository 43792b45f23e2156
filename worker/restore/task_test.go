package restore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

// TestSetAddressMapFindsThePlacedOrClaimedSet: the map goes into the placed directory,
// or into the one the wrapper claimed (and waits in); with neither it is refused.
func TestSetAddressMapFindsThePlacedOrClaimedSet(t *testing.T) {
	d := &Docker{DataRoot: t.TempDir()}
	m, err := rewrite.NewMap(map[netip.Addr]netip.Addr{netip.MustParseAddr("10.0.0.1"): netip.MustParseAddr("10.0.0.9")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetAddressMap("st_web", 1, m); !errors.Is(err, ErrNoPlacedTask) {
		t.Fatalf("no set placed: %v, want ErrNoPlacedTask", err)
	}
	for _, name := range []string{ociwrap.ForTask("st_web", 1), ociwrap.ForTask("st_web", 2) + ".restoring-abc"} {
		dir := filepath.Join(d.Area(), name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for slot, dir := range map[int]string{1: ociwrap.ForTask("st_web", 1), 2: ociwrap.ForTask("st_web", 2) + ".restoring-abc"} {
		if err := d.SetAddressMap("st_web", slot, m); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(d.Area(), dir, ociwrap.AddressMapFile))
		if err != nil {
			t.Fatalf("slot %d: map not in %s: %v", slot, dir, err)
		}
		got, err := rewrite.ParseMap(f)
		f.Close()
		if err != nil || got.Len() != 1 {
			t.Fatalf("slot %d: map %v %v", slot, got, err)
		}
		if fi, _ := os.Stat(filepath.Join(d.Area(), dir, ociwrap.AddressMapFile)); fi.Mode().Perm() != 0o600 {
			t.Fatalf("map mode %v", fi.Mode())
		}
	}
}

// TestPlaceTaskKeepAndUnplace: a kept placement is a hard-linked copy (the set stays
// verifiable where it was); a claimed placement is never taken back; an unclaimed one is
// deleted, or moved back to the sets directory without the wrapper's instructions.
func TestPlaceTaskKeepAndUnplace(t *testing.T) {
	d := &Docker{DataRoot: t.TempDir()}
	v := placeableSet(t, container.Spec{Image: "img"})
	orig := v.Dir()
	if _, err := d.PlaceTask(v, "st_web", 1, TaskOptions{Keep: true, NetworkLock: true, AddressMapUntil: time.Now().Add(time.Minute), Expires: time.Now().Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	placed := filepath.Join(d.Area(), ociwrap.ForTask("st_web", 1))
	for _, f := range []string{ociwrap.LockFile, ociwrap.AddressWaitFile, ociwrap.ExpiresFile, imageset.ManifestName} {
		if _, err := os.Stat(filepath.Join(placed, f)); err != nil {
			t.Fatalf("placed set lacks %s: %v", f, err)
		}
	}
	if _, err := imageset.Check(orig); err != nil {
		t.Fatalf("kept set no longer verifies (instructions written into it?): %v", err)
	}
	a, _ := os.Stat(filepath.Join(orig, imageset.ManifestName))
	b, _ := os.Stat(filepath.Join(placed, imageset.ManifestName))
	if !os.SameFile(a, b) {
		t.Fatalf("placed manifest is not a hard link of the kept one")
	}
	// Claimed by a wrapper: ClaimedBy names the container, UnplaceTask leaves it.
	claimed := placed + ".restoring-abc"
	if err := os.Rename(placed, claimed); err != nil {
		t.Fatal(err)
	}
	if ids := d.ClaimedBy("st_web", 1); len(ids) != 1 || ids[0] != "abc" {
		t.Fatalf("ClaimedBy = %v, want [abc]", ids)
	}
	if removed, err := d.UnplaceTask("st_web", 1, ""); removed || err != nil {
		t.Fatalf("unplace of a claimed set: removed=%v err=%v", removed, err)
	}
	if _, err := os.Stat(claimed); err != nil {
		t.Fatalf("claimed set touched by unplace: %v", err)
	}
	if err := os.Rename(claimed, placed); err != nil {
		t.Fatal(err)
	}
	// Unclaimed, the set still at its place: the copy is deleted.
	if removed, err := d.UnplaceTask("st_web", 1, orig); !removed || err != nil {
		t.Fatalf("unplace: removed=%v err=%v", removed, err)
	}
	if left, _ := filepath.Glob(filepath.Join(d.Area(), "*")); len(left) != 0 {
		t.Fatalf("left in the restore area: %v", left)
	}
	if _, err := imageset.Check(orig); err != nil {
		t.Fatalf("kept set damaged by unplace: %v", err)
	}
	// Without Keep the set moves; unplace moves it back, verifiable again.
	if _, err := d.PlaceTask(v, "st_web", 2, TaskOptions{NetworkLock: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orig); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("set still at %s after a moving placement: %v", orig, err)
	}
	if removed, err := d.UnplaceTask("st_web", 2, orig); !removed || err != nil {
		t.Fatalf("unplace: removed=%v err=%v", removed, err)
	}
	if _, err := imageset.Check(orig); err != nil {
		t.Fatalf("set moved back does not verify: %v", err)
	}
}

func placeableSet(t *testing.T, spec container.Spec) imageset.Verified {
	set := filepath.Join(t.TempDir(), "set")
	if _, err := (dump.Fake{}).Dump(context.Background(), container.Ref{ID: "x", Pid: 1}, spec, set, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	// A CRIU files.img without sockets: what PlaceTask reads the connections from.
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
	v, err := imageset.Check(set)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

package restore

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

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

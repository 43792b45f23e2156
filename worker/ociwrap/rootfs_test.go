package ociwrap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// withRoot points the node's bundle config.json root.path at a new directory holding
// a file of the image, and returns that directory.
func (n node) withRoot(t *testing.T) string {
	t.Helper()
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(n.bundle, "config.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &cfg))
	root := filepath.Join(n.bundle, "rootfs")
	must(t, os.MkdirAll(filepath.Join(root, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "data", "from-image"), []byte("image"), 0o644))
	cfg["root"] = map[string]any{"path": "rootfs"} // relative to the bundle
	writeJSON(t, filepath.Join(n.bundle, "config.json"), cfg)
	return root
}

// layerInto packs a writable layer holding data/db into the restore directory dir.
func layerInto(t *testing.T, dir string) {
	t.Helper()
	up := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(up, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(up, "data", "db"), []byte("every key"), 0o600))
	st, err := rootfsdiff.PackFile(filepath.Join(dir, "images", rootfsdiff.FileName), up)
	must(t, err)
	if st.Entries != 2 {
		t.Fatalf("packed %+v", st)
	}
}

// TestRestoreAppliesWritableLayer: before runc restore the wrapper unpacks the set's
// rootfs-diff.tar into the bundle's rootfs, unless the worker marked it applied.
func TestRestoreAppliesWritableLayer(t *testing.T) {
	n := newNode(t, nil)
	root := n.withRoot(t)
	dir := n.placeDir(t, ForContainer(id))
	layerInto(t, dir)
	if code, _, stderr := n.run(t, n.create()...); code != 0 {
		t.Fatalf("create: code %d: %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(root, "data", "db"))
	if err != nil || string(b) != "every key" {
		t.Fatalf("rootfs data/db = %q, %v: the layer was not applied before the restore", b, err)
	}
	logb, _ := os.ReadFile(filepath.Join(n.bundle, "log.json"))
	if !strings.Contains(string(logb), "writable layer of "+id+" applied") {
		t.Fatalf("runtime log does not report the applied layer: %s", logb)
	}

	// Applied already by the worker (an exact restore on overlay2): left alone.
	n2 := newNode(t, nil)
	root2 := n2.withRoot(t)
	dir2 := n2.placeDir(t, ForContainer(id))
	layerInto(t, dir2)
	must(t, os.WriteFile(filepath.Join(dir2, RootfsAppliedFile), nil, 0o600))
	if code, _, stderr := n2.run(t, n2.create()...); code != 0 {
		t.Fatalf("create: code %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root2, "data", "db")); err == nil {
		t.Fatal("the wrapper applied a layer the worker had applied already")
	}
}

// TestRestoreLayerFailureIsNoFreshStart: a layer that cannot be applied fails the
// create with the reason and leaves the restore directory for the worker.
func TestRestoreLayerFailureIsNoFreshStart(t *testing.T) {
	n := newNode(t, nil)
	root := n.withRoot(t)
	dir := n.placeDir(t, ForContainer(id))
	layerInto(t, dir)
	must(t, os.RemoveAll(root)) // the rootfs is not there (not mounted)
	code, execed, stderr := n.run(t, n.create()...)
	if code == 0 || len(execed) != 0 {
		t.Fatalf("create succeeded (code %d, exec %q) with a layer that cannot be applied", code, execed)
	}
	if !strings.Contains(stderr, "writable layer not applied") {
		t.Fatalf("stderr does not say why: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ErrorFile)); err != nil {
		t.Fatalf("restore directory not put back with its error: %v", err)
	}
}

package imageset

import (
	"os"
	"path/filepath"
	"testing"
)

// TestParentChain: a set with 3 pre-dumps is linked final -> pre/2 -> pre/1 -> pre/0,
// as CRIU's --parent-path made it; unlinked, it seals as regular files only (the
// pre-dumps' files listed under pre/K/), and linked again it has the same chain.
func TestParentChain(t *testing.T) {
	set := t.TempDir()
	images := ImagesPath(set)
	for k := 0; k < 3; k++ {
		if err := os.MkdirAll(PreDumpPath(images, k), DirMode); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(PreDumpPath(images, k), "pages-1.img"), []byte{byte(k)}, FileMode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(images, "pages-1.img"), []byte("final"), FileMode); err != nil {
		t.Fatal(err)
	}
	if got := ParentPath(0, false); got != "" {
		t.Fatalf("pre-dump 0 has parent %q", got)
	}
	if got := ParentPath(2, false); got != "../1" {
		t.Fatalf("pre-dump 2: parent %q", got)
	}
	if got := ParentPath(3, true); got != "pre/2" {
		t.Fatalf("final after 3: parent %q", got)
	}
	check := func() {
		t.Helper()
		for dir, want := range map[string]string{images: "pre/2", PreDumpPath(images, 2): "../1", PreDumpPath(images, 1): "../0"} {
			if got, err := os.Readlink(filepath.Join(dir, ParentLink)); err != nil || got != want {
				t.Fatalf("%s/parent -> %q %v, want %q", dir, got, err, want)
			}
			// The link resolves to a pre-dump's directory.
			if _, err := os.Stat(filepath.Join(dir, ParentLink, "pages-1.img")); err != nil {
				t.Fatalf("through %s/parent: %v", dir, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(PreDumpPath(images, 0), ParentLink)); err == nil {
			t.Fatal("pre-dump 0 has a parent link")
		}
	}
	if err := LinkParents(images, 3); err != nil {
		t.Fatal(err)
	}
	check()
	if err := LinkParents(images, 3); err != nil { // idempotent
		t.Fatalf("linked twice: %v", err)
	}
	if err := Seal(set, &Manifest{}); err == nil {
		t.Fatal("sealed a set with its parent links in place")
	}
	if err := UnlinkParents(images, 3); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{PreDumps: 3}
	if err := Seal(set, m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 || m.Files[1].Name != "pre/0/pages-1.img" {
		t.Fatalf("sealed files %+v", m.Files)
	}
	if _, err := Verify(set); err != nil {
		t.Fatal(err)
	}
	if err := LinkParents(images, m.PreDumps); err != nil {
		t.Fatal(err)
	}
	check()
	if err := LinkParents(filepath.Join(t.TempDir(), "images"), 1); err == nil {
		t.Fatal("linked a chain whose pre-dump is missing")
	}
}

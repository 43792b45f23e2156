package rootfsdiff

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// overlay mounts lower+upper on a new merged directory (unmounted at cleanup).
func overlay(t *testing.T, lower, upper string) string {
	t.Helper()
	base := t.TempDir()
	work, merged := filepath.Join(base, "work"), filepath.Join(base, "merged")
	must(t, os.Mkdir(work, 0o700))
	must(t, os.Mkdir(merged, 0o755))
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("SKIP INTEGRATION: cannot mount overlayfs here (%v): the overlay round trip needs it", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(merged, 0) })
	return merged
}

// TestOverlayRoundTrip: changes made through a real overlay mount (files written and
// deleted, a directory removed and made again) are packed from its upper directory;
// applied into the upper directory of a fresh overlay (before it is mounted, as for an
// exact restore) and into a fresh overlay's mounted root (as the runtime wrapper does),
// both show exactly the first container's view.
func TestOverlayRoundTrip(t *testing.T) {
	needRoot(t)
	lower := t.TempDir()
	write(t, filepath.Join(lower, "etc/keep"), []byte("image"), 0o644, 0, 0)
	write(t, filepath.Join(lower, "etc/gone"), []byte("image"), 0o644, 0, 0)
	write(t, filepath.Join(lower, "data/old1"), []byte("image"), 0o644, 0, 0)
	write(t, filepath.Join(lower, "data/sub/old2"), []byte("image"), 0o644, 0, 0)
	write(t, filepath.Join(lower, "app/log"), []byte("line 1\n"), 0o644, 1000, 1000)

	upper := t.TempDir()
	merged := overlay(t, lower, upper)
	must(t, os.Remove(filepath.Join(merged, "etc/gone")))
	must(t, os.RemoveAll(filepath.Join(merged, "data")))
	write(t, filepath.Join(merged, "data/member/snap/db"), []byte("every key"), 0o600, 999, 999)
	f, err := os.OpenFile(filepath.Join(merged, "app/log"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("line 2\n")
	must(t, err)
	must(t, f.Close())
	must(t, os.Symlink("member/snap/db", filepath.Join(merged, "data/current")))
	want := tree(t, merged)

	tarPath := filepath.Join(t.TempDir(), FileName)
	st, err := PackFile(tarPath, upper)
	must(t, err)
	if st.Whiteouts < 1 || st.Opaque != 1 {
		t.Fatalf("pack of a real upper dir: %+v, want a whiteout (etc/gone) and an opaque dir (data)", st)
	}

	t.Run("upper", func(t *testing.T) {
		up := t.TempDir()
		_, err := ApplyFile(tarPath, up, Upper)
		must(t, err)
		diffTrees(t, want, tree(t, overlay(t, lower, up)))
	})
	t.Run("rootfs", func(t *testing.T) {
		m := overlay(t, lower, t.TempDir())
		_, err := ApplyFile(tarPath, m, Rootfs)
		must(t, err)
		diffTrees(t, want, tree(t, m))
	})
}

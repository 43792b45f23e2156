package space

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFreeOfARealFileSystem: statfs of a directory that does not exist yet (the sets
// directory before the first dump) answers for its nearest existing ancestor.
func TestFreeOfARealFileSystem(t *testing.T) {
	dir := t.TempDir()
	d, err := Free(filepath.Join(dir, "swarmckpt", "sets"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Free <= 0 || d.Dir != filepath.Join(dir, "swarmckpt", "sets") {
		t.Errorf("Free = %+v: want the directory named and some space free", d)
	}
	if d.Mount == "" || !filepath.IsAbs(d.Mount) || !isAncestor(d.Mount, dir) {
		t.Errorf("mount point %q is not an ancestor of %s", d.Mount, dir)
	}
}

func isAncestor(a, p string) bool {
	rel, err := filepath.Rel(a, p)
	return err == nil && !filepath.IsAbs(rel) && (rel == "." || rel[0] != '.')
}

// TestMemoryOfThisProcess reads the real cgroup of the test process.
func TestMemoryOfThisProcess(t *testing.T) {
	n, err := Reader{}.Memory(os.Getpid())
	if err != nil {
		t.Skipf("SKIP INTEGRATION: no memory cgroup readable for this process here: %v", err)
	}
	if n <= 0 {
		t.Errorf("memory usage of this process's cgroup = %d, want > 0", n)
	}
}

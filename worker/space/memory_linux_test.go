package space

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReaderOnFakeHierarchies reads a v1 (hybrid) and a v2 cgroup tree built in a
// temporary directory, as the worker reads a container's.
func TestReaderOnFakeHierarchies(t *testing.T) {
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	proc, cg := filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
	write(filepath.Join(proc, "42", "cgroup"), "9:memory:/docker/c42\n0::/docker/c42\n")
	write(filepath.Join(cg, "memory", "docker", "c42", "memory.usage_in_bytes"), "104857600\n")
	write(filepath.Join(cg, "memory", "docker", "c42", "memory.stat"), "total_inactive_file 4857600\n")
	write(filepath.Join(proc, "43", "cgroup"), "0::/system.slice/docker-c43.scope\n")
	write(filepath.Join(cg, "system.slice", "docker-c43.scope", "memory.current"), "2000000\n")
	write(filepath.Join(cg, "system.slice", "docker-c43.scope", "memory.stat"), "inactive_file 1000000\n")
	r := Reader{Proc: proc, Cgroup: cg}
	if n, err := r.Memory(42); err != nil || n != 100000000 {
		t.Errorf("v1: %d, %v; want 100000000", n, err)
	}
	if n, err := r.Memory(43); err != nil || n != 1000000 {
		t.Errorf("v2: %d, %v; want 1000000", n, err)
	}
	if _, err := r.Memory(44); err == nil {
		t.Error("a process that is not there: want an error")
	}
	if _, err := r.Memory(0); err == nil {
		t.Error("no pid: want an error")
	}
}

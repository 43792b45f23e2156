package space

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Reader reads containers' memory usage from a /proc and a cgroup file system.
type Reader struct {
	// Proc and Cgroup are the mount points; empty means /proc and /sys/fs/cgroup.
	Proc, Cgroup string
}

// Memory returns the memory usage in bytes of the cgroup of the process pid (a
// container's init): usage less inactive file cache, as `docker stats` shows it.
func (r Reader) Memory(pid int) (int64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("space: no pid (%d): is the container running?", pid)
	}
	proc, root := or(r.Proc, "/proc"), or(r.Cgroup, "/sys/fs/cgroup")
	table, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, fmt.Errorf("space: %w", err)
	}
	path, v2, ok := cgroupOf(string(table))
	if !ok {
		return 0, fmt.Errorf("space: process %d has no memory cgroup", pid)
	}
	dirs := []string{filepath.Join(root, "memory", path)}
	current, stat := "memory.usage_in_bytes", "memory.stat"
	if v2 {
		dirs = []string{filepath.Join(root, path), filepath.Join(root, "unified", path)}
		current = "memory.current"
	}
	for _, d := range dirs {
		cur, err := os.ReadFile(filepath.Join(d, current))
		if err != nil {
			continue
		}
		st, _ := os.ReadFile(filepath.Join(d, stat))
		n, err := usage(string(cur), string(st), v2)
		if err != nil {
			return 0, fmt.Errorf("space: %s: %w", d, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("space: process %d: no %s under %v", pid, current, dirs)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

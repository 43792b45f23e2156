package space

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// cgroupOf finds a process's memory cgroup in its /proc/PID/cgroup table: the memory
// controller's path (cgroup v1), else the unified hierarchy's (v2).
func cgroupOf(table string) (path string, v2 bool, ok bool) {
	var unified string
	hasUnified := false
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified, hasUnified = parts[2], true
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "memory" {
				return parts[2], false, true
			}
		}
	}
	return unified, true, hasUnified
}

// usage is what `docker stats` shows as a container's memory usage: the cgroup's
// usage (memory.current on v2, memory.usage_in_bytes on v1) less its inactive file
// cache (memory.stat inactive_file, total_inactive_file on v1), which a dump does not
// write.
func usage(current, stat string, v2 bool) (int64, error) {
	cur, err := strconv.ParseInt(strings.TrimSpace(current), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory usage %q: %w", strings.TrimSpace(current), err)
	}
	key := "total_inactive_file"
	if v2 {
		key = "inactive_file"
	}
	sc := bufio.NewScanner(strings.NewReader(stat))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n < cur {
			return cur - n, nil
		}
	}
	return cur, nil
}

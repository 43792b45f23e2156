// Package freezer freezes and thaws every process of a container with the cgroup freezer
// (cgroup v1 freezer.state, or cgroup v2 cgroup.freeze). The container's cgroup is found
// from /proc/<pid>/cgroup of its init process, so it works for any cgroup parent or
// driver Docker was configured with.
//
//	THAWED ──Freeze──▶ FREEZING ──(all tasks stopped)──▶ FROZEN ──Thaw──▶ THAWED
//
// Freeze returns only once the kernel reports FROZEN (or ctx ends, in which case the
// container is thawed again before returning the error). Both calls are idempotent.
package freezer

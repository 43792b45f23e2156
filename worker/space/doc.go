// Package space is the disk-space preflight of a dump: before a node accepts a
// snapshot plan (or a migration's dump) and anything of the stack is locked or
// frozen, it compares the free space of the file system that will hold the image sets
// it dumps locally with an estimate of what those dumps will write, and refuses the
// plan up front when they would not fit (an error matching syscall.ENOSPC, sent as
// reason "no_space"), instead of failing after the freeze.
//
// Check is the decision, a pure function: each dump's estimate is its container's
// memory usage plus a margin (MarginRatio of it, at least MarginMin; CRIU writes the
// memory pages plus small images), and the total must fit the free space. The I/O is
// small and separate: Free (statfs of the sets directory, or its nearest existing
// ancestor, and the file system's mount point) and Reader.Memory (the container's
// memory cgroup: usage less the inactive file cache, as `docker stats` shows it; the
// page cache of files is not dumped).
package space

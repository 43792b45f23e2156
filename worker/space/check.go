package space

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// The margin added to each dump's memory usage: CRIU writes the pages of the memory in
// use plus its other images (and a set may carry its writable layer's changes).
const (
	// MarginRatio of a container's memory usage is added to its estimate.
	MarginRatio = 0.10
	// MarginMin is the least margin of one dump (bytes).
	MarginMin = 16 << 20
)

// Dump is one dump whose image set is to be written on the file system.
type Dump struct {
	// Label names the container in messages (SERVICE.SLOT, or its name).
	Label string
	// Memory is the container's memory usage in bytes (Reader.Memory); negative when
	// unknown (only the margin is counted then).
	Memory int64
}

// Estimate is what d's set will take on disk: its memory usage plus the margin.
func (d Dump) Estimate() int64 {
	m := max(d.Memory, 0)
	return m + max(int64(float64(m)*MarginRatio), MarginMin)
}

// Need is what dumps will take on disk: the sum of their estimates.
func Need(dumps []Dump) int64 {
	var need int64
	for _, d := range dumps {
		need += d.Estimate()
	}
	return need
}

// Disk is the file system that holds a node's image sets.
type Disk struct {
	// Dir is the directory the sets are written in.
	Dir string
	// Mount is the mount point of its file system ("" when unknown).
	Mount string
	// Free is what an unprivileged writer may still write there (statfs f_bavail),
	// in bytes.
	Free int64
}

// Check decides whether dumps fit on disk: nil, or an error matching
// syscall.ENOSPC that names node, the file system, its free space, what the dumps
// need (the largest few by name) and what to do. No dump: nil.
func Check(node string, disk Disk, dumps []Dump) error {
	need := Need(dumps)
	if len(dumps) == 0 || need <= disk.Free {
		return nil
	}
	fs := disk.Dir
	if disk.Mount != "" && disk.Mount != disk.Dir {
		fs = fmt.Sprintf("%s (mounted at %s)", disk.Dir, disk.Mount)
	}
	n := "1 container"
	if len(dumps) > 1 {
		n = fmt.Sprintf("%d containers", len(dumps))
	}
	return fmt.Errorf("%w: node %s: the dump of %s needs about %s (%d bytes: %s, plus %.0f%%, at least %s each), but the file system of %s has %s free (%d bytes): "+
		"refused before anything was locked or frozen; free space there (remove old snapshots with 'swarmckpt rm', or give the stack a retention policy), "+
		"or give the node's Docker data-root a larger disk, and try again",
		syscall.ENOSPC, node, n, human(need), need, what(dumps), MarginRatio*100, human(MarginMin), fs, human(disk.Free), disk.Free)
}

// what names the dumps and their memory, the largest first, at most 3 of them.
func what(dumps []Dump) string {
	byEst := slices.Clone(dumps)
	slices.SortStableFunc(byEst, func(a, b Dump) int { return cmp.Compare(b.Estimate(), a.Estimate()) })
	var parts []string
	for i, d := range byEst {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d more", len(byEst)-3))
			break
		}
		mem := "memory unknown"
		if d.Memory >= 0 {
			mem = human(d.Memory) + " in memory"
		}
		parts = append(parts, fmt.Sprintf("%s %s", d.Label, mem))
	}
	return strings.Join(parts, ", ")
}

func human(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

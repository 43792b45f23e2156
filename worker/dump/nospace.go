package dump

import (
	"fmt"
	"strings"
	"syscall"
)

// criuNoSpace is how CRIU's log and runc's output say that a write of the images
// failed for want of space (ENOSPC's strerror).
const criuNoSpace = "No space left on device"

// noSpace turns a failed checkpoint whose CRIU log or runc output (texts) says the disk
// was full into an error that says so first, with what to do, and that matches
// syscall.ENOSPC with errors.Is (the worker's API sends it as reason "no_space"); any
// other failure is returned unchanged. free is the space left in dir afterwards (-1:
// unknown).
func noSpace(err error, dir string, free int64, texts ...string) error {
	if err == nil {
		return nil
	}
	full := false
	for _, t := range texts {
		if strings.Contains(t, criuNoSpace) {
			full = true
			break
		}
	}
	if !full {
		return err
	}
	left := "unknown"
	if free >= 0 {
		left = fmt.Sprintf("%.1f MiB", float64(free)/(1<<20))
	}
	return fmt.Errorf("%w: the file system of %s is full (free now: %s): CRIU could not write the images; "+
		"free space there (remove old snapshots with 'swarmckpt rm', or give the stack a retention policy) and try again: %w",
		syscall.ENOSPC, dir, left, err)
}

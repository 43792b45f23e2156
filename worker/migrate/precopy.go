package migrate

import (
	"errors"
	"fmt"
)

// PreCopyPolicy bounds the pre-copy loop.
type PreCopyPolicy struct {
	// MaxIters is the largest number of pre-dumps before the final dump (default 5).
	MaxIters int
	// Threshold: stop pre-dumping once an iteration wrote at most this many bytes
	// (default 16 MiB): the final, frozen dump is then short.
	Threshold int64
	// Shrink: stop when an iteration wrote more than Shrink times the previous one
	// (the working set is not converging; default 0.9).
	Shrink float64
}

// DefaultPreCopyPolicy returns the defaults.
func DefaultPreCopyPolicy() PreCopyPolicy {
	return PreCopyPolicy{MaxIters: 5, Threshold: 16 << 20, Shrink: 0.9}
}

// Validate checks p.
func (p PreCopyPolicy) Validate() error {
	if p.MaxIters < 1 || p.Threshold < 0 || p.Shrink <= 0 {
		return fmt.Errorf("migrate: bad pre-copy policy %+v", p)
	}
	return nil
}

// Step is what to do next in the pre-copy loop.
type Step int

const (
	// PreDump: run another pre-dump (container keeps running).
	PreDump Step = iota
	// FinalDump: stop the container and dump the remaining dirty pages.
	FinalDump
)

func (s Step) String() string {
	if s == PreDump {
		return "pre-dump"
	}
	return "final-dump"
}

// ErrNoProgress: a pre-dump wrote nothing and no iteration happened: nonsensical input.
var ErrNoProgress = errors.New("migrate: pre-copy history is empty")

// NextPreCopy decides the next step from the bytes written by each pre-dump so far
// (written[0] is the first, full pre-dump). Pure.
func NextPreCopy(p PreCopyPolicy, written []int64) (Step, string) {
	n := len(written)
	switch {
	case n == 0:
		return PreDump, "first pre-dump copies all memory while the container runs"
	case written[n-1] <= p.Threshold:
		return FinalDump, fmt.Sprintf("last pre-dump wrote %d bytes <= threshold %d", written[n-1], p.Threshold)
	case n >= p.MaxIters:
		return FinalDump, fmt.Sprintf("reached %d pre-dumps", n)
	case n >= 2 && float64(written[n-1]) > p.Shrink*float64(written[n-2]):
		return FinalDump, fmt.Sprintf("dirty set not converging: %d after %d bytes", written[n-1], written[n-2])
	}
	return PreDump, fmt.Sprintf("dirty set shrinking: %d bytes last time", written[n-1])
}

// PreDumpArgs returns the runc checkpoint arguments of pre-dump k (0-based) into
// dir/k, chaining to the previous iteration's images; final is the last, real dump.
func PreDumpArgs(root, id, dir string, k int, final bool) []string {
	args := []string{"--root", root, "checkpoint", "--image-path", fmt.Sprintf("%s/%d", dir, k),
		"--work-path", fmt.Sprintf("%s/work-%d", dir, k), "--tcp-established"}
	if !final {
		args = append(args, "--pre-dump")
	}
	if k > 0 {
		args = append(args, "--parent-path", fmt.Sprintf("../%d", k-1))
	}
	return append(args, id)
}

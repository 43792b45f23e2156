package migrate

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
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
// (written[0] is the first, full pre-dump), without their durations (NextRound with
// sizes only: no dirty-rate prediction). Pure.
func NextPreCopy(p PreCopyPolicy, written []int64) (Step, string) {
	rounds := make([]Round, len(written))
	for i, w := range written {
		rounds[i] = Round{Bytes: w}
	}
	return NextRound(p, rounds)
}

// Round is one pre-dump: the bytes it wrote (the pages dirtied since the previous
// one; the first writes all memory) and how long it took.
type Round struct {
	Bytes   int64
	Seconds float64
}

// NextRound decides the next step of the pre-copy loop from the rounds so far. Pure.
// It stops iterating (FinalDump) when
//   - the last round wrote at most p.Threshold bytes: the frozen final dump is short;
//   - p.MaxIters rounds ran;
//   - the dirty set's size converged: the last round wrote more than p.Shrink times
//     the one before;
//   - the dirty rate converged: the container dirtied rounds[n-1].Bytes while round
//     n-2 ran (rate = Bytes[n-1] / Seconds[n-2]); at that rate another round, as long
//     as the last, would write about rate * Seconds[n-1] bytes, and if that is not
//     under p.Shrink times the last round another one gains nothing.
//
// Otherwise it asks for another pre-dump.
func NextRound(p PreCopyPolicy, rounds []Round) (Step, string) {
	n := len(rounds)
	if n == 0 {
		return PreDump, "first pre-dump copies all memory while the container runs"
	}
	last := rounds[n-1]
	switch {
	case last.Bytes <= p.Threshold:
		return FinalDump, fmt.Sprintf("last pre-dump wrote %d bytes <= threshold %d", last.Bytes, p.Threshold)
	case n >= p.MaxIters:
		return FinalDump, fmt.Sprintf("reached %d pre-dumps", n)
	case n >= 2 && float64(last.Bytes) > p.Shrink*float64(rounds[n-2].Bytes):
		return FinalDump, fmt.Sprintf("dirty set not converging: %d after %d bytes", last.Bytes, rounds[n-2].Bytes)
	}
	if n >= 2 && rounds[n-2].Seconds > 0 && last.Seconds > 0 {
		rate := float64(last.Bytes) / rounds[n-2].Seconds
		if next := rate * last.Seconds; next > p.Shrink*float64(last.Bytes) {
			return FinalDump, fmt.Sprintf("dirty rate converged: %.0f bytes/s would dirty ~%.0f bytes during another %.2f s round, not under %.2f x the last round's %d",
				rate, next, last.Seconds, p.Shrink, last.Bytes)
		}
	}
	return PreDump, fmt.Sprintf("dirty set shrinking: %d bytes last time", last.Bytes)
}

// PreDumpArgs returns the runc checkpoint arguments of pre-dump k (0-based) of
// container id into images/pre/K (imageset.PreDumpPath), CRIU's work files in
// work/pre-K, chained to pre-dump K-1 (--parent-path ../K-1); the container keeps
// running (--pre-dump).
func PreDumpArgs(root, id, images, work string, k int) []string {
	args := []string{"--root", root, "checkpoint", "--pre-dump", "--image-path", imageset.PreDumpPath(images, k),
		"--work-path", filepath.Join(work, fmt.Sprintf("pre-%d", k)), "--tcp-established"}
	if p := imageset.ParentPath(k, false); p != "" {
		args = append(args, "--parent-path", p)
	}
	return append(args, id)
}

package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/swarmckpt/swarmckpt/worker/pipemax"
)

// Sentinel errors.
var (
	// ErrPreCopyUnsupported: this node cannot do iterative pre-dump.
	ErrPreCopyUnsupported = errors.New("migrate: pre-copy unsupported on this node")
	// ErrPostCopyUnsupported: this node cannot do lazy-pages post-copy.
	ErrPostCopyUnsupported = errors.New("migrate: post-copy unsupported on this node")
)

// FeatureChecker answers CRIU's `criu check --feature NAME`.
type FeatureChecker interface {
	Feature(ctx context.Context, name string) (bool, error)
}

// CRIUFeatures runs the criu binary (CRIU, default "criu").
type CRIUFeatures struct{ CRIU string }

// Feature implements FeatureChecker.
func (c CRIUFeatures) Feature(ctx context.Context, name string) (bool, error) {
	bin := c.CRIU
	if bin == "" {
		bin = "criu"
	}
	out, err := exec.CommandContext(ctx, bin, "check", "--feature", name).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: criu check --feature %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// StaticFeatures is a FeatureChecker for tests.
type StaticFeatures map[string]bool

// Feature implements FeatureChecker.
func (s StaticFeatures) Feature(_ context.Context, name string) (bool, error) { return s[name], nil }

// PreCopySupport returns nil when iterative pre-dump can run, else why not.
func PreCopySupport(ctx context.Context, f FeatureChecker) error {
	if f == nil {
		return fmt.Errorf("%w: no CRIU feature checker", ErrPreCopyUnsupported)
	}
	ok, err := f.Feature(ctx, "mem_dirty_track")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPreCopyUnsupported, err)
	}
	if !ok {
		return fmt.Errorf("%w: `criu check --feature mem_dirty_track` fails: the kernel has no soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY off), so CRIU cannot tell which pages changed between pre-dumps; use --mode cold or run on a kernel built with CONFIG_MEM_SOFT_DIRTY=y", ErrPreCopyUnsupported)
	}
	return nil
}

// MinPipeMaxSize is the smallest /proc/sys/fs/pipe-max-size with which CRIU's lazy page
// server works without CAP_SYS_RESOURCE. CRIU's page server (page-xfer.c,
// page_server_serve) calls pipe_read_dest_init, which sets its tee pipe to
// PIPE_MAX_SIZE pages (4 MiB) with F_SETPIPE_SZ; above pipe-max-size that needs
// CAP_SYS_RESOURCE, and on failure it returns before opening its /dev/null sink, a
// return value the caller ignores: every page request then fails with
// "page-pipe: splice: -1: Bad file descriptor" (splice into fd 0) and the dump reports
// "Lazy pages transfer FAILED".
const MinPipeMaxSize = 4 << 20

// PipeLimit is the host's fs.pipe-max-size as a worker sees it (pipemax.Governor).
type PipeLimit interface {
	// Current reads the setting.
	Current() (int, error)
	// CanRaise returns nil if the worker may raise the setting for a post-copy dump.
	CanRaise() error
}

// PostCopySupport returns nil when lazy-pages migration can run, else why not. pipes
// nil reads /proc/sys/fs/pipe-max-size and assumes it cannot be raised.
func PostCopySupport(ctx context.Context, f FeatureChecker, pipes PipeLimit) error {
	if f == nil {
		return fmt.Errorf("%w: no CRIU feature checker", ErrPostCopyUnsupported)
	}
	ok, err := f.Feature(ctx, "uffd-noncoop")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPostCopyUnsupported, err)
	}
	if !ok {
		return fmt.Errorf("%w: `criu check --feature uffd-noncoop` fails: the kernel lacks non-cooperative userfaultfd", ErrPostCopyUnsupported)
	}
	if pipes == nil {
		pipes = fixedPipes{pipemax.Governor{Sysctl: pipemax.DefaultSysctl}}
	}
	n, err := pipes.Current()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPostCopyUnsupported, err)
	}
	if n >= MinPipeMaxSize || hasCapSysResource() {
		return nil
	}
	if err := pipes.CanRaise(); err != nil {
		return fmt.Errorf("%w: /proc/sys/fs/pipe-max-size is %d, this process lacks CAP_SYS_RESOURCE and cannot raise the setting for the dump (%w), so CRIU's lazy page server could not size its 4 MiB pipe and would fail every page request (\"page-pipe: splice: -1: Bad file descriptor\"); run `sysctl -w fs.pipe-max-size=%d` on the source node (cold dumps are then slower on some hosts: docs/dataplane.md, \"Pipe size\")", ErrPostCopyUnsupported, n, err, MinPipeMaxSize)
	}
	return nil
}

// fixedPipes reads the kernel's setting (Governor.Current) and cannot change it.
type fixedPipes struct{ pipemax.Governor }

func (fixedPipes) CanRaise() error { return errors.New("no governor of the setting") }

// hasCapSysResource reports whether CAP_SYS_RESOURCE (bit 24) is in our effective set.
func hasCapSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}

package migrate

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
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

// PostCopyReason is why lazy-pages migration is refused on nodes where userfaultfd
// exists (see docs/dataplane.md, "Post-copy"); empty when it is known to work.
var PostCopyReason = "runc 1.1.5 starts the lazy-pages page server of `runc checkpoint --lazy-pages` inside its own CRIU swrk call and relies on the restore side's `criu lazy-pages` daemon; on this machine the dump side fails with `page-pipe: splice: Bad file descriptor` when the daemon connects, so pages cannot be served (see docs/dataplane.md)"

// PostCopySupport returns nil when lazy-pages migration can run, else why not.
func PostCopySupport(ctx context.Context, f FeatureChecker) error {
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
	if PostCopyReason != "" {
		return fmt.Errorf("%w: %s", ErrPostCopyUnsupported, PostCopyReason)
	}
	return nil
}

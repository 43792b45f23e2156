package migrate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPreCopyRefusedWithoutSoftDirty(t *testing.T) {
	err := PreCopySupport(context.Background(), StaticFeatures{"uffd-noncoop": true})
	if !errors.Is(err, ErrPreCopyUnsupported) || !strings.Contains(err.Error(), "mem_dirty_track") || !strings.Contains(err.Error(), "CONFIG_MEM_SOFT_DIRTY") {
		t.Fatalf("err = %v", err)
	}
	if err := PreCopySupport(context.Background(), StaticFeatures{"mem_dirty_track": true}); err != nil {
		t.Fatalf("with soft-dirty: %v", err)
	}
}

// pipes is a PipeLimit stand-in.
type pipes struct {
	n        int
	canRaise error
}

func (p pipes) Current() (int, error) { return p.n, nil }
func (p pipes) CanRaise() error       { return p.canRaise }

func TestPostCopyNeedsPipeMaxSize(t *testing.T) {
	ctx, uffd := context.Background(), StaticFeatures{"uffd-noncoop": true}
	err := PostCopySupport(ctx, uffd, pipes{1 << 20, errors.New("read-only /proc/sys")})
	if !hasCapSysResource() && (!errors.Is(err, ErrPostCopyUnsupported) || !strings.Contains(err.Error(), "pipe-max-size is 1048576") ||
		!strings.Contains(err.Error(), "read-only /proc/sys") || !strings.Contains(err.Error(), "sysctl -w fs.pipe-max-size=4194304")) {
		t.Fatalf("a low setting that cannot be raised: %v", err)
	}
	if err := PostCopySupport(ctx, uffd, pipes{512 << 10, nil}); err != nil {
		t.Fatalf("a low setting the worker can raise: %v", err)
	}
	if err := PostCopySupport(ctx, uffd, pipes{MinPipeMaxSize, errors.New("read-only")}); err != nil {
		t.Fatalf("with a 4 MiB pipe-max-size: %v", err)
	}
	if err := PostCopySupport(ctx, StaticFeatures{}, pipes{MinPipeMaxSize, nil}); !errors.Is(err, ErrPostCopyUnsupported) || !strings.Contains(err.Error(), "uffd") {
		t.Fatalf("without uffd: %v", err)
	}
}

// TestRealNodeRefusesPreCopy checks this machine's CRIU: the kernel lacks soft-dirty.
func TestRealNodeFeatureCheckRuns(t *testing.T) {
	ok, err := CRIUFeatures{}.Feature(context.Background(), "mem_dirty_track")
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: criu not runnable here: %v", err)
	}
	t.Logf("criu check --feature mem_dirty_track: %v", ok)
	if err := PreCopySupport(context.Background(), CRIUFeatures{}); (err == nil) != ok {
		t.Fatalf("PreCopySupport = %v but feature = %v", err, ok)
	}
}

func TestNextPreCopy(t *testing.T) {
	p := DefaultPreCopyPolicy()
	const M = 1 << 20
	for _, c := range []struct {
		written []int64
		want    Step
	}{
		{nil, PreDump},
		{[]int64{1024 * M}, PreDump},
		{[]int64{1024 * M, 100 * M}, PreDump},
		{[]int64{1024 * M, 100 * M, 10 * M}, FinalDump},                   // under threshold
		{[]int64{1024 * M, 100 * M, 95 * M}, FinalDump},                   // not converging
		{[]int64{1024 * M, 512 * M, 256 * M, 128 * M, 64 * M}, FinalDump}, // max iterations
		{[]int64{1024 * M, 512 * M, 256 * M, 128 * M}, PreDump},
	} {
		if got, why := NextPreCopy(p, c.written); got != c.want {
			t.Errorf("NextPreCopy(%v) = %v (%s), want %v", c.written, got, why, c.want)
		}
	}
	if err := (PreCopyPolicy{}).Validate(); err == nil {
		t.Error("zero policy validated")
	}
}

// TestNextRound: with the rounds' durations the policy also stops when the dirty rate
// converged (another round would write about as much as the last), and keeps going
// while the rate predicts a shrinking set; size, threshold and MaxIters rules as for
// NextPreCopy.
func TestNextRound(t *testing.T) {
	p := DefaultPreCopyPolicy()
	const M = 1 << 20
	for _, c := range []struct {
		name   string
		rounds []Round
		want   Step
		why    string
	}{
		{"First", nil, PreDump, "first pre-dump"},
		{"OneRound", []Round{{1024 * M, 1}}, PreDump, "shrinking"},
		// 100 MiB dirtied during a 1 s round; the last round took 0.1 s: ~10 MiB next.
		{"RateShrinks", []Round{{1024 * M, 1}, {100 * M, 0.1}}, PreDump, "shrinking"},
		// 200 MiB dirtied during a 1 s round, the last round took 0.95 s: ~190 MiB next,
		// more than 0.9 x 200 MiB.
		{"RateConverged", []Round{{1024 * M, 1}, {200 * M, 0.95}}, FinalDump, "dirty rate converged"},
		{"SizeConverged", []Round{{1024 * M, 1}, {512 * M, 0.5}, {500 * M, 0.5}}, FinalDump, "not converging"},
		{"Threshold", []Round{{1024 * M, 1}, {16 * M, 0.9}}, FinalDump, "threshold"},
		{"MaxIters", []Round{{1024 * M, 4}, {512 * M, 2}, {256 * M, 1}, {128 * M, 0.5}, {64 * M, 0.25}}, FinalDump, "reached 5"},
		{"NoDurations", []Round{{1024 * M, 0}, {200 * M, 0}}, PreDump, "shrinking"},
	} {
		got, why := NextRound(p, c.rounds)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: NextRound(%v) = %v (%s), want %v (%q)", c.name, c.rounds, got, why, c.want, c.why)
		}
	}
}

func TestPreDumpArgsChainParents(t *testing.T) {
	a := PreDumpArgs("/r", "cid", "/s/images", "/s/work", 0)
	if !slices.Contains(a, "--pre-dump") || slices.Contains(a, "--parent-path") || !slices.Contains(a, "/s/images/pre/0") || a[len(a)-1] != "cid" {
		t.Fatalf("first: %q", a)
	}
	f := PreDumpArgs("/r", "cid", "/s/images", "/s/work", 2)
	i := slices.Index(f, "--parent-path")
	if !slices.Contains(f, "--pre-dump") || i < 0 || f[i+1] != "../1" || !slices.Contains(f, "/s/images/pre/2") || !slices.Contains(f, "/s/work/pre-2") || f[len(f)-1] != "cid" {
		t.Fatalf("third: %q", f)
	}
}

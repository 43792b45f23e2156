package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// lazyDumper is dump.Fake whose dumps with a page server leave a page server running
// until served is closed (as dump.Runc's post-copy dumps do).
type lazyDumper struct {
	dump.Fake
	served chan struct{}
	mu     sync.Mutex
	lazy   map[string]dump.Lazy
}

type fakeLazy struct{ served chan struct{} }

func (l fakeLazy) Wait() error { <-l.served; return nil }
func (l fakeLazy) Cancel()     {}

func (d *lazyDumper) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts dump.Options) (*imageset.Manifest, error) {
	m, err := d.Fake.Dump(ctx, c, spec, set, opts)
	if err == nil && opts.PageServer != "" {
		d.mu.Lock()
		d.lazy[set] = fakeLazy{d.served}
		d.mu.Unlock()
	}
	return m, err
}

func (d *lazyDumper) LazyOf(set string) (dump.Lazy, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.lazy[set]
	return l, ok
}

// TestPostCopyRaisesPipeMaxSizeWhileServing: a post-copy dump raises fs.pipe-max-size to
// CRIU's 4 MiB before CRIU starts and puts it back only once the page server is done; a
// setting the worker may not raise refuses post-copy before the container is touched.
func TestPostCopyRaisesPipeMaxSizeWhileServing(t *testing.T) {
	ctx := context.Background()
	d := &lazyDumper{served: make(chan struct{}), lazy: map[string]dump.Lazy{}}
	n := newFakeNodeDumper(t, "a", d)
	n.add("db", 7)
	if _, err := n.w.DumpLazy(ctx, "db", "pc.db", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.pipes.Current(); v != 4<<20 {
		t.Fatalf("pipe-max-size %d while the page server runs, want 4 MiB", v)
	}
	close(d.served)
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, raises := n.pipes.Holders()
		v, _ := n.pipes.Current()
		if held == 0 && v == 512<<10 && raises == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the pages were served: %d holders, %d raises, pipe-max-size %d; want 0, 1, 512 KiB", held, raises, v)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A setting the worker cannot raise: refused up front, nothing locked or frozen.
	m := newFakeNode(t, "b")
	ref := m.add("db", 7)
	m.pipes.ReadOnly = errors.New("read-only file system")
	_, err := m.w.DumpLazy(ctx, "db", "pc2.db", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "pipe-max-size is 524288") || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("post-copy with a setting that cannot be raised: %v", err)
	}
	if info, _ := m.w.Info(ctx); info.PostCopy.OK || !strings.Contains(info.PostCopy.Reason, "sysctl -w fs.pipe-max-size=4194304") {
		t.Fatalf("Info: %+v, want post-copy unavailable with the fix", info.PostCopy)
	}
	if _, raises := m.pipes.Holders(); raises != 0 {
		t.Fatalf("%d raises after a refusal", raises)
	}
	if frozen, err := m.freeze.Frozen(ctx, ref); err != nil || frozen {
		t.Fatalf("container frozen (%v, %v) after a refused post-copy", frozen, err)
	}
}

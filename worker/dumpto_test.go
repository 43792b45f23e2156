package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

func TestDumpToStreamsTheSetWhileDumping(t *testing.T) {
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	a.add("api", 8)
	for i, s := range []worker.Dumper{a.w, &worker.Client{Addr: a.w.Addr()}} {
		name := []string{"web", "api"}[i]
		m, err := s.DumpTo(ctx, name, "mig."+name, b.w.Addr(), false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "mig."+name))
		if err != nil || got.ContainerID != m.ContainerID || len(got.Files) != len(m.Files) {
			t.Fatalf("received set: %+v %v", got, err)
		}
		// The source keeps its copy (a failed restore on the target falls back on it).
		if _, err := imageset.Verify(filepath.Join(a.w.SetsDir(), "mig."+name)); err != nil {
			t.Fatalf("source set: %v", err)
		}
		ref, err := b.w.Restore(ctx, "mig."+name, worker.RestoreOptions{})
		if err != nil || ref.Name != name || !b.restorer.Exists(name) {
			t.Fatalf("restore of the streamed set: %+v %v", ref, err)
		}
		if err := b.w.RemoveContainer(ctx, name); err != nil { // frees the fake's IP
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(b.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("target kept %v after the restores", entries)
	}
}

func TestDumpToRefusedKeepsTheSourceSet(t *testing.T) {
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	if err := os.MkdirAll(filepath.Join(b.w.SetsDir(), "mig.web"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := a.w.DumpTo(ctx, "web", "mig.web", b.w.Addr(), false)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "intact on this node") {
		t.Fatalf("DumpTo onto an existing set: %v, want a 409 and the source set kept", err)
	}
	if _, err := imageset.Verify(filepath.Join(a.w.SetsDir(), "mig.web")); err != nil {
		t.Fatalf("source set after a refused transfer: %v", err)
	}
}

// corruptingDumper flips one byte of what the dumper hands to the sink: the manifest's
// digests are those of the local files, so the receiver must refuse.
type corruptingDumper struct{ dump.Fake }

type corruptingSink struct {
	dump.Sink
	done bool
}

func (s *corruptingSink) Append(name string, p []byte) error {
	if !s.done && len(p) > 0 && strings.HasPrefix(name, "pages-") {
		s.done = true
		q := append([]byte(nil), p...)
		q[0] ^= 0xff
		return s.Sink.Append(name, q)
	}
	return s.Sink.Append(name, p)
}

func (d corruptingDumper) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts dump.Options) (*imageset.Manifest, error) {
	if opts.Sink != nil {
		opts.Sink = &corruptingSink{Sink: opts.Sink}
	}
	return d.Fake.Dump(ctx, c, spec, set, opts)
}

func TestDumpToCorruptedInTransitIsRefused(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", corruptingDumper{}), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	_, err := a.w.DumpTo(ctx, "web", "mig.web", b.w.Addr(), false)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("DumpTo with a byte flipped in transit: %v, want the receiver's checksum refusal", err)
	}
	if entries, _ := os.ReadDir(b.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("receiver kept %v", entries)
	}
}

// failingDumper streams part of the pages, then fails as CRIU does on an exited container.
type failingDumper struct{ dump.Fake }

func (failingDumper) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts dump.Options) (*imageset.Manifest, error) {
	if opts.Sink != nil {
		_ = opts.Sink.Append("pages-1.img", []byte("the first pages"))
	}
	return nil, fmt.Errorf("dump %s: %w: container exited", c, dump.ErrCRIU)
}

func TestDumpToFailedDumpLeavesNothingOnTheTarget(t *testing.T) {
	a, b := newFakeNodeDumper(t, "a", failingDumper{}), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	_, err := a.w.DumpTo(ctx, "web", "mig.web", b.w.Addr(), false)
	if !errors.Is(err, dump.ErrCRIU) {
		t.Fatalf("DumpTo of a container that cannot be dumped: %v, want ErrCRIU", err)
	}
	// The receiver sees the stream cut and removes what it got (after DumpTo returned).
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(b.w.SetsDir())
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver kept %v", entries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Package dumptest is the conformance suite every dump.Dumper must pass.
package dumptest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Target returns a fresh running container and its spec.
type Target func(t *testing.T) (container.Ref, container.Spec)

// Run runs the suite against d.
func Run(t *testing.T, d dump.Dumper, target Target) {
	ctx := context.Background()
	t.Run("sealed set with manifest", func(t *testing.T) {
		c, spec := target(t)
		set := filepath.Join(t.TempDir(), "sets", "one")
		m, err := d.Dump(ctx, c, spec, set, dump.Options{LeaveRunning: true, Node: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		if m.ContainerID != c.ID || m.Node != "n1" || !m.LeaveRunning || m.Spec.Image != spec.Image || len(m.Files) == 0 {
			t.Fatalf("manifest = %+v", m)
		}
		if m.CRIUVersion == "" || m.Kernel == "" {
			t.Fatalf("manifest lacks CRIU version or kernel: %+v", m)
		}
		got, err := imageset.Verify(set)
		if err != nil {
			t.Fatalf("Verify of a fresh dump: %v", err)
		}
		if len(got.Files) != len(m.Files) {
			t.Fatalf("manifest on disk has %d files, returned %d", len(got.Files), len(m.Files))
		}
		err = filepath.WalkDir(set, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			want := imageset.FileMode
			if e.IsDir() {
				want = imageset.DirMode
			}
			if p != filepath.Join(set, dump.WorkDir) && filepath.Dir(p) != filepath.Join(set, dump.WorkDir) && fi.Mode().Perm() != want {
				t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Dump(ctx, c, spec, set, dump.Options{LeaveRunning: true}); !errors.Is(err, dump.ErrExists) {
			t.Fatalf("second dump into the same dir: %v, want ErrExists", err)
		}
	})
	t.Run("sink receives the set while it is written", func(t *testing.T) {
		c, spec := target(t)
		set := filepath.Join(t.TempDir(), "sets", "streamed")
		pr, pw := io.Pipe()
		lw := imageset.NewLiveWriter(pw)
		dst := filepath.Join(t.TempDir(), "target", "streamed")
		type result struct {
			v   imageset.Verified
			err error
		}
		got := make(chan result, 1)
		go func() {
			v, err := imageset.ReceiveLive(pr, dst)
			pr.CloseWithError(err)
			got <- result{v, err}
		}()
		m, err := d.Dump(ctx, c, spec, set, dump.Options{LeaveRunning: true, Node: "n1", Sink: lw})
		if err != nil {
			pw.CloseWithError(err)
			t.Fatal(err)
		}
		mb, err := os.ReadFile(filepath.Join(set, imageset.ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		pw.CloseWithError(lw.Finish(mb))
		r := <-got
		if r.err != nil {
			t.Fatalf("receiver refused the streamed set: %v", r.err)
		}
		if len(r.v.Manifest().Files) != len(m.Files) || r.v.Manifest().TotalBytes() != m.TotalBytes() {
			t.Fatalf("received %v, dumped %d files / %d bytes", r.v, len(m.Files), m.TotalBytes())
		}
		if _, err := imageset.Verify(dst); err != nil {
			t.Fatalf("received set: %v", err)
		}
		if _, err := imageset.Verify(set); err != nil {
			t.Fatalf("local set: %v", err)
		}
	})
	t.Run("gone container leaves nothing", func(t *testing.T) {
		set := filepath.Join(t.TempDir(), "gone")
		_, err := d.Dump(ctx, container.Ref{ID: "0000000000000000deadbeef", Name: "gone"}, container.Spec{}, set, dump.Options{})
		if !errors.Is(err, dump.ErrCRIU) {
			t.Fatalf("dump of a gone container: %v, want ErrCRIU", err)
		}
		if _, err := os.Stat(set); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed dump left %s behind (stat err %v)", set, err)
		}
	})
}

package dump

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Fake is an in-memory-driven Dumper: it writes a small deterministic image set derived
// from the container ID. Containers with Pid <= 0 fail like an exited container.
type Fake struct{}

var (
	_ Dumper    = Fake{}
	_ PreDumper = Fake{}
)

// Dump implements Dumper.
func (Fake) Dump(_ context.Context, c container.Ref, spec container.Spec, set string, opts Options) (m *imageset.Manifest, err error) {
	if c.Pid <= 0 {
		return nil, fmt.Errorf("dump %s: %w: container is not running", c, ErrCRIU)
	}
	if err := os.MkdirAll(filepath.Dir(set), imageset.DirMode); err != nil {
		return nil, err
	}
	if err := os.Mkdir(set, imageset.DirMode); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("dump %s into %s: %w", c, set, ErrExists)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(set))
		}
	}()
	images := imageset.ImagesPath(set)
	if err := os.Mkdir(images, imageset.DirMode); err != nil {
		return nil, err
	}
	files := map[string]string{
		"inventory.img": "fake inventory " + c.ID,
		"pages-1.img":   fmt.Sprintf("fake pages of pid %d", c.Pid),
	}
	if opts.PreCopied != "" {
		// As CRIU with --parent-path: the pre-dumps move in and the final dump links
		// its parent; the link goes before sealing, as in Runc.Dump.
		if err := adoptPreDumps(opts.PreCopied, images, opts.PreDumps); err != nil {
			return nil, err
		}
		if err := os.Symlink(imageset.ParentPath(opts.PreDumps, true), filepath.Join(images, imageset.ParentLink)); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(images, imageset.ParentLink, "pages-1.img")); err != nil {
			return nil, fmt.Errorf("dump %s: %w: parent images: %w", c, ErrCRIU, err)
		}
		files["pages-1.img"] = fmt.Sprintf("fake pages of pid %d dirtied since pre-dump %d", c.Pid, opts.PreDumps-1)
		if err := imageset.UnlinkParents(images, opts.PreDumps); err != nil {
			return nil, err
		}
	}
	if opts.SendPages != "" {
		pages := map[string]string{"pages-1.img": files["pages-1.img"], "pagemap-1.img": "fake pagemap " + c.ID}
		delete(files, "pages-1.img")
		if err := sendPages(opts.SendPages, pages); err != nil {
			return nil, err
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(images, name), []byte(content), imageset.FileMode); err != nil {
			return nil, err
		}
	}
	vols, known, err := packVolumes(opts.Volumes, images) // as the real dumper does
	if err != nil {
		return nil, err
	}
	if opts.Sink != nil {
		known = map[string]imageset.File{} // streamRest sends and hashes them
	}
	known = withPreKnown(known, opts)
	m = &imageset.Manifest{ContainerID: c.ID, Node: opts.Node, Spec: spec, LeaveRunning: opts.LeaveRunning,
		CRIUVersion: "fake", Kernel: "fake", Created: time.Now().UTC(), Volumes: vols, PreDumps: preDumps(opts)}
	if opts.Sink != nil {
		if known, err = streamRest(images, known, nil, opts.Sink); err != nil {
			return nil, err
		}
	}
	if err := imageset.SealKnown(set, m, known); err != nil {
		return nil, err
	}
	return m, nil
}

// Kill implements the optional kill of a container dumped with LeaveRunning (fake
// containers have no processes: nothing to do).
func (Fake) Kill(context.Context, container.Ref) error { return nil }

// WaitEnded implements the optional wait for a killed container's end (nothing to
// wait for in a fake).
func (Fake) WaitEnded(context.Context, container.Ref) error { return nil }

// PageServer is the fake's page server: it reads the files a Fake dump with SendPages
// wrote to conn (name line, size line, content, repeated) into images.
func (Fake) PageServer(_ context.Context, conn *os.File, images, _ string) error {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		var name string
		var size int64
		if _, err := fmt.Fscanf(r, "%s %d\n", &name, &size); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("%w: fake page server: %w", ErrCRIU, err)
		}
		if err := imageset.CheckName(name); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(images, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, imageset.FileMode)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, r, size)
		if err = errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("%w: fake page server: %w", ErrCRIU, err)
		}
	}
}

// sendPages is the fake's side of SendPages: it writes pages to the page server at addr.
func sendPages(addr string, files map[string]string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("%w: fake page server at %s: %w", ErrCRIU, addr, err)
	}
	defer conn.Close()
	for name, content := range files {
		if _, err := fmt.Fprintf(conn, "%s %d\n%s", name, len(content), content); err != nil {
			return fmt.Errorf("%w: fake page server at %s: %w", ErrCRIU, addr, err)
		}
	}
	return nil
}

// FakePreDumpBytes is what the fake's pre-dump k reports written: half of the one
// before, from 64 MiB (a converging dirty set), whatever it writes.
func FakePreDumpBytes(k int) int64 { return (64 << 20) >> k }

// PreDump implements PreDumper: pre-dump k writes a small pages file under
// imageset.PreDumpPath(images, k), links its parent as CRIU does, and reports
// FakePreDumpBytes(k). A container with Pid <= 0 fails like an exited one.
func (Fake) PreDump(_ context.Context, c container.Ref, images, _ string, k int) (int64, error) {
	if c.Pid <= 0 {
		return 0, fmt.Errorf("pre-dump %d of %s: %w: container is not running", k, c, ErrCRIU)
	}
	dir := imageset.PreDumpPath(images, k)
	if err := os.MkdirAll(dir, imageset.DirMode); err != nil {
		return 0, err
	}
	if p := imageset.ParentPath(k, false); p != "" {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return 0, fmt.Errorf("pre-dump %d of %s: %w: no parent: %w", k, c, ErrCRIU, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, imageset.ParentLink)); err != nil {
			return 0, err
		}
	}
	page := fmt.Sprintf("fake pre-dump %d of pid %d", k, c.Pid)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), []byte(page), imageset.FileMode); err != nil {
		return 0, err
	}
	return FakePreDumpBytes(k), nil
}

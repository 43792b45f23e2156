package dump

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Fake is an in-memory-driven Dumper: it writes a small deterministic image set derived
// from the container ID. Containers with Pid <= 0 fail like an exited container.
type Fake struct{}

var _ Dumper = Fake{}

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
	for name, content := range map[string]string{
		"inventory.img": "fake inventory " + c.ID,
		"pages-1.img":   fmt.Sprintf("fake pages of pid %d", c.Pid),
	} {
		if err := os.WriteFile(filepath.Join(images, name), []byte(content), imageset.FileMode); err != nil {
			return nil, err
		}
	}
	m = &imageset.Manifest{ContainerID: c.ID, Node: opts.Node, Spec: spec, LeaveRunning: opts.LeaveRunning,
		CRIUVersion: "fake", Kernel: "fake", Created: time.Now().UTC()}
	known := map[string]imageset.File{}
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

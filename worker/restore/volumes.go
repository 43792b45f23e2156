package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// ErrVolumeInUse: a volume a set carries already holds data on the restoring node.
var ErrVolumeInUse = errors.New("restore: the node already has a volume of that name with data")

// VolumeFiller recreates the local named volumes a set carries (imageset.Manifest.
// Volumes) with their content, before the set's container is restored on a node other
// than the one it was dumped on. A volume missing there is created; one that exists
// must be empty (ErrVolumeInUse otherwise: its data is not ours to replace). undo
// removes the volumes FillVolumes created (a restore that failed). Docker and Fake
// offer it.
type VolumeFiller interface {
	FillVolumes(ctx context.Context, v imageset.Verified) (undo func(), err error)
}

var (
	_ VolumeFiller = (*Docker)(nil)
	_ VolumeFiller = (*Fake)(nil)
)

// fillVolume unpacks the set's tar of volume vol into dir, which must be empty, and
// gives dir the volume root's mode and owner.
func fillVolume(v imageset.Verified, vol imageset.Volume, dir string) error {
	name := vol.Name
	empty, err := emptyDir(dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if !empty {
		return fmt.Errorf("volume %s: %w (%s is not empty): remove it on this node (docker volume rm %s) if its data is not needed, or restore on the node the snapshot was taken on",
			name, ErrVolumeInUse, dir, name)
	}
	tar := filepath.Join(imageset.ImagesPath(v.Dir()), imageset.VolumeFile(name))
	if _, err := rootfsdiff.ApplyFile(tar, dir, rootfsdiff.Rootfs); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if vol.Mode == 0 {
		return nil // not recorded
	}
	// Owner first: chown clears setuid/setgid bits that chmod then sets.
	if err := os.Lchown(dir, vol.UID, vol.GID); err != nil {
		return fmt.Errorf("volume %s: owner of its root: %w", name, err)
	}
	if err := os.Chmod(dir, fileMode(vol.Mode)); err != nil {
		return fmt.Errorf("volume %s: mode of its root: %w", name, err)
	}
	return nil
}

// fileMode converts Unix permission bits (with setuid, setgid, sticky) to fs.FileMode.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// FillVolumes implements VolumeFiller: the fake's volumes are directories under
// VolumesDir.
func (f *Fake) FillVolumes(_ context.Context, v imageset.Verified) (func(), error) {
	if !v.Valid() {
		return nil, ErrUnverified
	}
	var created []string
	undo := func() {
		for _, d := range created {
			_ = os.RemoveAll(d)
		}
	}
	for _, vol := range v.Manifest().Volumes {
		dir := filepath.Join(f.VolumesDir(), vol.Name)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				undo()
				return nil, err
			}
			created = append(created, dir)
		}
		if err := fillVolume(v, vol, dir); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// VolumesDir is where the fake keeps its volumes (one directory per name).
func (f *Fake) VolumesDir() string { return filepath.Join(filepath.Dir(f.Consumed), "volumes") }

package restore

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/volume"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// FillVolumes implements VolumeFiller with the engine's local volume driver: a missing
// volume is created (labelled with the set it came from), an existing one must be a
// local, empty one.
func (d *Docker) FillVolumes(ctx context.Context, v imageset.Verified) (func(), error) {
	if !v.Valid() {
		return nil, ErrUnverified
	}
	var created []string
	undo := func() {
		for _, n := range created {
			if err := d.Cli.VolumeRemove(context.WithoutCancel(ctx), n, true); err != nil && d.Log != nil {
				d.Log.Warn("could not remove a volume created for a restore that failed", "volume", n, "err", err)
			}
		}
	}
	for _, vol := range v.Manifest().Volumes {
		dv, err := d.Cli.VolumeInspect(ctx, vol.Name)
		switch {
		case cerrdefs.IsNotFound(err):
			dv, err = d.Cli.VolumeCreate(ctx, volume.CreateOptions{Name: vol.Name, Driver: "local",
				Labels: map[string]string{"swarmckpt.carried-from": v.Dir()}})
			if err != nil {
				undo()
				return nil, fmt.Errorf("volume %s: docker volume create: %w", vol.Name, err)
			}
			created = append(created, vol.Name)
		case err != nil:
			undo()
			return nil, fmt.Errorf("volume %s: docker volume inspect: %w", vol.Name, err)
		case dv.Driver != "local":
			undo()
			return nil, fmt.Errorf("volume %s: %w: this node has it with driver %q, not local: the carried content cannot go into it", vol.Name, ErrVolumeInUse, dv.Driver)
		}
		if err := fillVolume(v, vol, dv.Mountpoint); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// checkVolume says why volume vol, which the restore of key recreates here from its
// set, cannot be (a pre-flight check, FillVolumes's own conditions): none when it is
// missing, or local and empty.
func (d *Docker) checkVolume(ctx context.Context, node, key, vol string) ([]string, error) {
	dv, err := d.Cli.VolumeInspect(ctx, vol)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("inspect volume %s on node %s: %w", vol, node, err)
	case dv.Driver != "local":
		return []string{fmt.Sprintf("%s: node %s has a volume %s of driver %q, not local: the content the snapshot carries cannot go into it; restore %s elsewhere (--node %s=NODE)",
			key, node, vol, dv.Driver, key, key)}, nil
	}
	empty, err := emptyDir(dv.Mountpoint)
	if err != nil {
		return nil, fmt.Errorf("volume %s on node %s: %w", vol, node, err)
	}
	if !empty {
		return []string{fmt.Sprintf("%s: node %s already has a volume %s with data, which the snapshot's copy would replace: remove it there (docker volume rm %s) if its data is not needed, or restore %s elsewhere (--node %s=NODE)",
			key, node, vol, vol, key, key)}, nil
	}
	return nil, nil
}

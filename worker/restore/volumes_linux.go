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

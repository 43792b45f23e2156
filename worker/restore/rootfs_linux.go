package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// applyRootfs unpacks the set's writable layer (images/rootfs-diff.tar), placed at
// placed, into the overlay upper directory of the created container id before it is
// started (whiteouts and opaque directories as overlay's own), and marks the
// placed set so that the runtime wrapper does not apply it again
// (ociwrap.RootfsAppliedFile). On a node whose storage driver is not overlay2 it does
// nothing: the wrapper applies the layer into the mounted rootfs instead. A set
// without the file (a snapshot taken before layers were carried) restores as before.
func (d *Docker) applyRootfs(ctx context.Context, v imageset.Verified, id, placed string) error {
	if _, ok := v.Manifest().Lookup(rootfsdiff.FileName); !ok {
		return nil
	}
	ci, err := d.Cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("writable layer: inspect the new container: %w", err)
	}
	upper := ""
	if ci.ContainerJSONBase != nil && ci.GraphDriver.Name == "overlay2" {
		upper = ci.GraphDriver.Data["UpperDir"]
	}
	if upper == "" {
		if d.Log != nil {
			d.Log.Info("storage driver is not overlay2: the runtime applies the writable layer into the container's rootfs", "container", id, "driver", ci.GraphDriver.Name)
		}
		return nil
	}
	st, err := rootfsdiff.ApplyFile(filepath.Join(placed, imageset.ImagesDir, rootfsdiff.FileName), upper, rootfsdiff.Upper)
	if err != nil {
		return fmt.Errorf("writable layer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(placed, ociwrap.RootfsAppliedFile), nil, imageset.FileMode); err != nil {
		return fmt.Errorf("writable layer: %w", err)
	}
	if d.Log != nil {
		d.Log.Info("writable layer applied", "container", id, "entries", st.Entries, "whiteouts", st.Whiteouts,
			"bytes", st.Bytes, "seconds", st.Took.Seconds())
	}
	return nil
}

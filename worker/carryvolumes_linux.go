package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// DumpWith implements Dumper.
func (w *Worker) DumpWith(ctx context.Context, name, setID string, o DumpOptions) (*imageset.Manifest, error) {
	if o.Lazy != "" {
		if o.CarryVolumes {
			return nil, fmt.Errorf("worker %s: dump %s: %w: a post-copy dump cannot carry volumes (its memory stays on this node until fetched); leave out --carry-volumes or migrate with --copy direct", w.cfg.Node, name, node.ErrInvalidArgument)
		}
		if !o.LeaveRunning {
			return w.DumpLazy(ctx, name, setID, o.Lazy)
		}
		return w.dumpLazyHeld(ctx, name, setID, o.Lazy)
	}
	opts := dump.Options{LeaveRunning: o.LeaveRunning}
	if o.PreCopied {
		if o.Into != "" {
			return nil, fmt.Errorf("worker %s: dump %s: %w: pre-dumps go with a plain or streamed dump only, not a direct one", w.cfg.Node, name, node.ErrInvalidArgument)
		}
		if err := w.withPreDumps(setID, o.StreamTo, &opts); err != nil {
			return nil, err
		}
		// Taken into the set by the dump, or useless after a failed one (CRIU's
		// chain was cut): what is left goes.
		defer func() { _ = w.dropPreDumps(setID) }()
	}
	if o.CarryVolumes {
		vols, err := w.localVolumes(ctx, name)
		if err != nil {
			return nil, err
		}
		opts.Volumes = vols
	}
	var m *imageset.Manifest
	var err error
	switch {
	case o.Into != "" && o.LeaveRunning:
		m, err = w.dumpIntoHeld(ctx, name, setID, o.Into, opts)
	case o.Into != "":
		m, err = w.dumpInto(ctx, name, setID, o.Into, opts)
	case o.StreamTo != "":
		m, err = w.dumpTo(ctx, name, setID, o.StreamTo, opts)
	default:
		m, err = w.dump(ctx, name, setID, opts)
	}
	if err == nil && len(m.Volumes) > 0 {
		w.log.Info("volumes carried", "container", name, "set", setID, "volumes", carriedVolumesNote(m))
	}
	return m, err
}

// localVolumes lists the local named volumes container name mounts, with their
// directories on this node (<data-root>/volumes/NAME/_data, the local driver's).
func (w *Worker) localVolumes(ctx context.Context, name string) ([]dump.Volume, error) {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	var out []dump.Volume
	for _, mt := range spec.Mounts {
		if !mt.LocalVolume() {
			continue
		}
		dir := volumeDir(w.cfg.DataRoot, mt.Source)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("worker %s: carry volume %s of %s: its directory %s is not there (%v): a local volume created with driver options (a device, NFS) cannot be carried; leave out --carry-volumes",
				w.cfg.Node, mt.Source, c.Name, dir, err)
		}
		out = append(out, dump.Volume{Name: mt.Source, Target: mt.Target, Dir: dir})
	}
	return out, nil
}

// volumeDir is the local driver's directory of volume name.
func volumeDir(dataRoot, name string) string {
	return filepath.Join(dataRoot, "volumes", name, "_data")
}

// fillVolumes recreates, before a restore of v on this node, the volumes v carries
// when v was dumped on another node (on its own node the container's volumes are still
// there, and are used as they are). undo removes the volumes it created.
func (w *Worker) fillVolumes(ctx context.Context, v imageset.Verified) (undo func(), err error) {
	m := v.Manifest()
	if len(m.Volumes) == 0 || m.Node == "" || m.Node == w.cfg.Node {
		return func() {}, nil
	}
	vf, ok := w.p.Restorer.(restore.VolumeFiller)
	if !ok {
		return nil, fmt.Errorf("worker %s: %w: this node's restorer cannot recreate the volumes the set carries", w.cfg.Node, ErrConfig)
	}
	undo, err = vf.FillVolumes(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("worker %s: recreate the volumes of %s: %w", w.cfg.Node, m.Spec.Name, err)
	}
	w.log.Info("carried volumes recreated", "container", m.Spec.Name, "from", m.Node, "volumes", carriedVolumesNote(m))
	return undo, nil
}

package dump

import (
	"fmt"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// packRootfs writes the container's writable layer (spec.UpperDir) into
// images/rootfs-diff.tar, a file of the set like the CRIU images (hashed, sealed,
// transferred and verified with them). It runs right after CRIU's dump, while the
// container is still frozen (the worker froze it before the dump, and CRIU leaves a
// cgroup it found frozen frozen) or its processes are gone: the layer is the one the
// images' open files refer to. A container on a storage driver other than overlay2 has
// its layer not carried, and the result says why.
//
// The tar's digest, computed while it was written, is file (empty when none was
// written), for imageset.SealKnown.
func packRootfs(spec container.Spec, images string) (_ *imageset.Rootfs, file imageset.File, _ error) {
	if spec.UpperDir == "" {
		reason := "the container's writable layer is not carried: Docker's storage driver here is " + fmt.Sprintf("%q", spec.StorageDriver) + ", not overlay2"
		if spec.ReadonlyRootfs {
			reason = "read-only root filesystem: nothing to carry"
		}
		return &imageset.Rootfs{Reason: reason}, file, nil
	}
	st, err := rootfsdiff.PackFile(filepath.Join(images, rootfsdiff.FileName), spec.UpperDir)
	if err != nil {
		return &imageset.Rootfs{Reason: err.Error()}, file, err
	}
	return &imageset.Rootfs{Carried: true, Entries: st.Entries, Whiteouts: st.Whiteouts, Bytes: st.Bytes,
			Seconds: st.Took.Seconds(), Skipped: st.Skipped},
		imageset.File{Name: rootfsdiff.FileName, Size: st.Size, SHA256: st.SHA256}, nil
}

package dump

import (
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// packVolumes writes each volume's directory into images/imageset.VolumeFile(name)
// (mode 0600, the tar format of rootfsdiff: owners, modes, times, xattrs), hashing it
// as it writes. It runs right after CRIU's dump, while the container is still frozen or
// its processes are gone, so the content is the one its processes left at the cut. A
// volume that cannot be packed fails the dump: carrying was asked for, and a set
// without the volume would restore elsewhere with other data.
func packVolumes(vols []Volume, images string) ([]imageset.Volume, map[string]imageset.File, error) {
	var out []imageset.Volume
	files := map[string]imageset.File{}
	for _, v := range vols {
		name := imageset.VolumeFile(v.Name)
		if err := imageset.CheckName(name); err != nil || filepath.Base(v.Name) != v.Name {
			return nil, nil, fmt.Errorf("volume %q: not a volume name", v.Name)
		}
		var root syscall.Stat_t
		if err := syscall.Stat(v.Dir, &root); err != nil {
			return nil, nil, fmt.Errorf("carry volume %s: %w", v.Name, err)
		}
		st, err := rootfsdiff.PackFile(filepath.Join(images, name), v.Dir)
		if err != nil {
			return nil, nil, fmt.Errorf("carry volume %s (%s): %w", v.Name, v.Dir, err)
		}
		out = append(out, imageset.Volume{Name: v.Name, Target: v.Target, Entries: st.Entries, Bytes: st.Bytes, Seconds: st.Took.Seconds(),
			Mode: root.Mode & 0o7777, UID: int(root.Uid), GID: int(root.Gid)})
		files[name] = imageset.File{Name: name, Size: st.Size, SHA256: st.SHA256}
	}
	return out, files, nil
}

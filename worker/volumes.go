package worker

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// localVolumeProblems refuses restoring the set of m on node target when its container
// mounts a local named volume and ran on another node: the snapshot carries the
// container's processes and its writable layer, not the volume's data, and Docker on
// target would mount target's volume of that name (created empty if it is missing), so
// the restored processes would find other files than they had. One line per volume,
// naming it and what to do; none when target is the node the container ran on (its
// volume is still there) or the set does not say where it ran, and none for a volume
// the set carries (snapshot --carry-volumes).
func localVolumeProblems(m *imageset.Manifest, key, target string) []string {
	if m.Node == "" || target == m.Node {
		return nil
	}
	if key == "" {
		key = m.Spec.Name
	}
	var out []string
	for _, mt := range m.Spec.Mounts {
		if !mt.LocalVolume() || m.CarriesVolume(mt.Source) {
			continue // a carried volume is recreated with its content (fillVolumes)
		}
		out = append(out, fmt.Sprintf("%s: mounts the local volume %s at %s on node %s, whose data is not in the snapshot; restored on node %s it would run with %s's volume %s (created empty if missing): restore %s on %s (--node %s=%s), take the snapshot with --carry-volumes (the volume's content goes into it), or keep that state in the container's filesystem or on a tmpfs (both are carried) or in a volume driver every node sees",
			key, mt.Source, mt.Target, m.Node, target, target, mt.Source, key, m.Node, key, m.Node))
	}
	return out
}

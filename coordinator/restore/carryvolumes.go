package restore

import (
	"path"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// CarriedVolumes names the local named volumes c's image set carries (snapshot
// --carry-volumes: images/volume-NAME.tar) when it is restored on node target other
// than the one it was dumped on: the restore recreates them there, so the pre-flight
// has that node check that it can (each missing, or empty). On c's own node the
// volumes are used as they are: none.
func CarriedVolumes(c store.Container, target string) []string {
	if c.Images == nil || target == c.Node {
		return nil
	}
	var out []string
	for _, f := range c.Images.Files {
		base := path.Base(f.Name)
		if strings.HasPrefix(base, "volume-") && strings.HasSuffix(base, ".tar") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(base, "volume-"), ".tar"))
		}
	}
	return out
}

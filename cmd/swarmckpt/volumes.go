package main

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// printCarriedVolumes prints one line per local named volume a snapshot carries
// (snapshot --carry-volumes): its container, name and size.
func printCarriedVolumes(w io.Writer, m *store.Manifest) {
	for _, c := range m.Containers {
		if c.Images == nil {
			continue
		}
		for _, f := range c.Images.Files {
			if name, ok := carriedVolume(f.Name); ok {
				fmt.Fprintf(w, "volume %s of %s carried: %s\n", name, c.Key(), human(f.Size))
			}
		}
	}
}

// carriedVolume tells whether an image file is a carried volume's tar
// (imageset.VolumeFile) and names the volume.
func carriedVolume(file string) (string, bool) {
	base := path.Base(file)
	if !strings.HasPrefix(base, "volume-") || !strings.HasSuffix(base, ".tar") {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimPrefix(base, "volume-"), ".tar"), true
}

package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/cut"
)

// LocalVerifier checks a snapshot whose image directories are readable from this
// process (a single machine, or a shared file system): every file's sha256 against the
// manifest, then the cut checker on the CRIU images (TCP sequence numbers of every
// connection between containers of the snapshot).
func LocalVerifier(ctx context.Context, m *store.Manifest) *store.Verdict {
	v := &store.Verdict{CheckedAt: time.Now().UTC()}
	dirs := map[string]string{}
	addrs := map[string][]netip.Addr{}
	for _, c := range m.Containers {
		if c.Images == nil {
			v.Error = fmt.Sprintf("%s has no image set", c.Key())
			return v
		}
		for _, f := range c.Images.Files {
			if err := checkFile(filepath.Join(c.Images.Dir, filepath.FromSlash(f.Name)), f); err != nil {
				v.Error = fmt.Sprintf("%s: %v", c.Key(), err)
				return v
			}
		}
		dirs[c.Key()] = filepath.Join(c.Images.Dir, "images")
		for _, ip := range c.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs[c.Key()] = append(addrs[c.Key()], a)
			}
		}
	}
	st, _, err := cut.FromImages(dirs, addrs)
	if err != nil {
		v.Error = fmt.Sprintf("read CRIU images: %v", err)
		return v
	}
	rep := cut.Check(st)
	v.Consistent = rep.Consistent()
	v.Summary = rep.Summary()
	v.Lines = rep.Lines()
	return v
}

func checkFile(path string, f store.File) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image file %s: %w (images live on their node; verify from that machine)", f.Name, err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("image file %s: %w", f.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || !strings.EqualFold(got, f.SHA256) {
		return fmt.Errorf("image file %s: checksum mismatch (size %d sha256 %s, manifest says size %d sha256 %s): the images are corrupt; take a new snapshot",
			f.Name, n, got[:12], f.Size, f.SHA256[:min(12, len(f.SHA256))])
	}
	return nil
}

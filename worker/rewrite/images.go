package rewrite

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/checkpoint-restore/go-criu/v7/crit"

	"github.com/swarmckpt/swarmckpt/criuimg"
)

// imageMode is the mode of every rewritten image file.
const imageMode fs.FileMode = 0o600

// networkImages are patterns of images of a dumped network namespace. They hold
// addresses in raw netlink form (ip addr/route save), are not rewritten, and are not
// used when runc restores a Docker container (into an empty namespace).
var networkImages = []string{"ifaddr-*.img", "route-*.img", "route6-*.img", "netdev-*.img"}

// Report says what a rewrite changed.
type Report struct {
	// Sockets is the number of inet socket entries examined.
	Sockets int `json:"sockets"`
	// Files are the image files rewritten (relative to the image directory), sorted.
	Files []string `json:"files"`
	// Changes lists every address rewritten.
	Changes []Change `json:"changes"`
	// NotRewritten are network namespace images present in the directory (see
	// networkImages): they may record old addresses and were left alone.
	NotRewritten []string `json:"notRewritten,omitempty"`
}

// Plan returns what Images would change in dir, without writing anything.
func Plan(dir string, m Map) (Report, error) { return images(dir, m, nil) }

// Images rewrites, in place, every address of m in the inet socket entries of the
// CRIU image directory dir. Each changed file is written to a temporary file (0600)
// and renamed over the original; unchanged files are not touched.
func Images(dir string, m Map) (Report, error) {
	return images(dir, m, func(string, string) error { return nil })
}

// images does the work; commit, when not nil, is called for each file after its new
// content is in a temporary file, before the rename (Set checks the old content there).
func images(dir string, m Map, commit func(name, tmp string) error) (Report, error) {
	var r Report
	imgs, err := criuimg.SocketImages(dir)
	if err != nil {
		return r, fmt.Errorf("%w: %w", ErrImage, err)
	}
	for _, img := range imgs {
		var changes []Change
		for _, e := range img.Image.Entries {
			isk := criuimg.Inet(e.Message)
			if isk == nil {
				continue
			}
			r.Sockets++
			c, err := rewriteSocket(img.Name, isk, m)
			if err != nil {
				return r, err
			}
			changes = append(changes, c...)
		}
		if len(changes) == 0 {
			continue
		}
		r.Changes = append(r.Changes, changes...)
		r.Files = append(r.Files, img.Name)
		if commit == nil {
			continue
		}
		if err := write(img.Path, img.Image, commit); err != nil {
			return r, err
		}
	}
	for _, pat := range networkImages {
		ms, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range ms {
			r.NotRewritten = append(r.NotRewritten, filepath.Base(p))
		}
	}
	sort.Strings(r.Files)
	sort.Strings(r.NotRewritten)
	return r, nil
}

// write encodes img with crit into a temporary file next to path, lets commit check
// it, and renames it over path.
func write(path string, img *crit.CriuImage, commit func(name, tmp string) error) (err error) {
	tmp := path + ".rewrite"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, imageMode)
	if err != nil {
		return fmt.Errorf("%w: create %s: %w", ErrImage, tmp, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := criuimg.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("%w: encode %s: %w", ErrImage, path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: sync %s: %w", ErrImage, tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: close %s: %w", ErrImage, tmp, err)
	}
	if err := commit(filepath.Base(path), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: replace %s: %w", ErrImage, path, err)
	}
	return nil
}

package rewrite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	"google.golang.org/protobuf/proto"
)

// imageMode is the mode of every rewritten image file.
const imageMode fs.FileMode = 0o600

// socketImages are the CRIU images that hold inet socket entries: files.img (every
// file descriptor, CRIU >= 3.x) and inetsk.img (older CRIU versions).
var socketImages = []struct {
	name  string
	entry proto.Message
}{
	{"files.img", &fdinfo.FileEntry{}},
	{"inetsk.img", &sk_inet.InetSkEntry{}},
}

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
	found := false
	for _, si := range socketImages {
		path := filepath.Join(dir, si.name)
		img, err := decode(path, si.entry)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return r, err
		}
		found = true
		var changes []Change
		for _, e := range img.Entries {
			isk := inetOf(e.Message)
			if isk == nil {
				continue
			}
			r.Sockets++
			c, err := rewriteSocket(si.name, isk, m)
			if err != nil {
				return r, err
			}
			changes = append(changes, c...)
		}
		if len(changes) == 0 {
			continue
		}
		r.Changes = append(r.Changes, changes...)
		r.Files = append(r.Files, si.name)
		if commit == nil {
			continue
		}
		if err := write(path, img, commit); err != nil {
			return r, err
		}
	}
	if !found {
		return r, fmt.Errorf("%w: %s has neither files.img nor inetsk.img (is it a CRIU image directory?)", ErrImage, dir)
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

func inetOf(msg proto.Message) *sk_inet.InetSkEntry {
	switch e := msg.(type) {
	case *fdinfo.FileEntry:
		if e.GetType() == fdinfo.FdTypes_INETSK {
			return e.GetIsk()
		}
	case *sk_inet.InetSkEntry:
		return e
	}
	return nil
}

func decode(path string, entry proto.Message) (*crit.CriuImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(entry)
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrImage, path, err)
	}
	return img, nil
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
	if err := crit.New(nil, f, "", false, false).Encode(img); err != nil {
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

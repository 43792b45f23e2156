package dump

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// follower hashes the files of a directory while another process appends to them, so
// that sealing a 1 GiB dump does not need a second pass over the pages after CRIU is
// done (CRIU writes every image file sequentially). Files it could not follow to the
// end, or whose size differs from what it hashed, are simply not reported: Seal hashes
// those itself.
type follower struct {
	dir   string
	files map[string]*followed
	buf   []byte
}

type followed struct {
	f   *os.File
	h   hash.Hash
	off int64
	bad bool
}

func newFollower(dir string) *follower {
	return &follower{dir: dir, files: map[string]*followed{}, buf: make([]byte, 1<<20)}
}

// pass reads whatever was appended since the last pass.
func (fl *follower) pass() {
	entries, err := os.ReadDir(fl.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		x := fl.files[e.Name()]
		if x == nil {
			f, err := os.Open(filepath.Join(fl.dir, e.Name()))
			if err != nil {
				continue
			}
			x = &followed{f: f, h: sha256.New()}
			fl.files[e.Name()] = x
		}
		if x.bad {
			continue
		}
		for {
			n, err := x.f.ReadAt(fl.buf, x.off)
			if n > 0 {
				x.h.Write(fl.buf[:n])
				x.off += int64(n)
			}
			if err == io.EOF || n == 0 {
				break
			}
			if err != nil {
				x.bad = true
				break
			}
		}
	}
}

// run polls until stop is closed, then does a last pass and returns what it hashed.
func (fl *follower) run(stop <-chan struct{}, interval time.Duration) map[string]imageset.File {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fl.pass()
			return fl.result()
		case <-t.C:
			fl.pass()
		}
	}
}

func (fl *follower) result() map[string]imageset.File {
	out := map[string]imageset.File{}
	for name, x := range fl.files {
		fi, err := x.f.Stat()
		x.f.Close()
		if err != nil || x.bad || fi.Size() != x.off {
			continue
		}
		// The name must still point to the inode we read (not replaced by a rename).
		if now, err := os.Stat(filepath.Join(fl.dir, name)); err != nil || !os.SameFile(fi, now) {
			continue
		}
		out[name] = imageset.File{Name: name, Size: x.off, SHA256: hex.EncodeToString(x.h.Sum(nil))}
	}
	return out
}

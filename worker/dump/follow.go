package dump

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// follower hashes the memory page files of a directory while CRIU appends to them, and
// hands the bytes it read to a sink (a transfer to the target node) as it goes, so that
// neither sealing nor sending a 1 GiB dump needs another pass over the pages after CRIU
// is done. Only pages-*.img are followed: CRIU writes them strictly by appending (page
// transfer splices into the open image); the other images are small and are read once
// CRIU exited. Files it could not follow to the end, or whose size or inode differs from
// what it read, are not reported: they are hashed (and re-sent) afterwards.
type follower struct {
	dir     string
	files   map[string]*followed
	buf     []byte
	sink    Sink
	sinkErr error
	// writeback starts the disk write-out of what it read (Follow: a set arriving on
	// its target node, imageset.WritebackEvery says why; a local dump: the set is
	// fsynced before it is reported durable, imageset.Sync).
	writeback bool
	// sizesOnly: the files are not read, only their growth is followed (for the
	// write-out); FollowSizes.
	sizesOnly bool
}

type followed struct {
	f   *os.File
	h   hash.Hash
	off int64
	bad bool
	wb  *imageset.Writeback // nil unless the follower's writeback is on
}

// followable tells whether the follower reads name while CRIU writes it.
func followable(name string) bool {
	return strings.HasPrefix(name, "pages-") && strings.HasSuffix(name, ".img")
}

func newFollower(dir string, sink Sink) *follower {
	return &follower{dir: dir, files: map[string]*followed{}, buf: make([]byte, 1<<20), sink: sink}
}

// send hands p for name to the sink; after the sink's first error it is not used again.
func (fl *follower) send(name string, p []byte) {
	if fl.sink == nil {
		return
	}
	if err := fl.sink.Append(name, p); err != nil {
		fl.sinkErr, fl.sink = err, nil
	}
}

// pass reads whatever was appended since the last pass.
func (fl *follower) pass() {
	entries, err := os.ReadDir(fl.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !followable(e.Name()) {
			continue
		}
		x := fl.files[e.Name()]
		if x == nil {
			f, err := os.Open(filepath.Join(fl.dir, e.Name()))
			if err != nil {
				continue
			}
			x = &followed{f: f, h: sha256.New()}
			if fl.writeback {
				x.wb = imageset.NewWriteback(f)
			}
			fl.files[e.Name()] = x
			fl.send(e.Name(), nil)
		}
		if x.bad {
			continue
		}
		if fl.sizesOnly {
			if fi, err := x.f.Stat(); err != nil {
				x.bad = true
			} else if d := fi.Size() - x.off; d > 0 {
				x.off += d
				x.wb.Wrote(d)
			}
			continue
		}
		for {
			n, err := x.f.ReadAt(fl.buf, x.off)
			if n > 0 {
				x.h.Write(fl.buf[:n])
				fl.send(e.Name(), fl.buf[:n])
				x.off += int64(n)
				x.wb.Wrote(int64(n))
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

// Follow hashes the memory page files (pages-*.img) of dir while another process
// appends to them, until stop is closed, and returns the digests of the files it read
// completely (name relative to dir); imageset.SealKnown uses them only where the size
// still matches and hashes every other file. It starts the disk write-out of what it
// read as it goes (imageset.Writeback): Follow serves the node that receives the pages.
func Follow(dir string, stop <-chan struct{}) map[string]imageset.File {
	fl := newFollower(dir, nil)
	fl.writeback = true
	known, _ := fl.run(stop, 2*time.Millisecond)
	return known
}

// FollowSizes is Follow without reading: it starts the disk write-out of the memory
// page files of dir as they grow, until stop is closed, and returns the files it saw
// with their sizes and no digest (SHA256 empty), for a receiver that hashes them later
// (imageset.HashLate). imageset.SealKnown keeps such an entry (empty digest) where the
// size still matches and hashes every other file.
func FollowSizes(dir string, stop <-chan struct{}) map[string]imageset.File {
	fl := newFollower(dir, nil)
	fl.writeback, fl.sizesOnly = true, true
	known, _ := fl.run(stop, 2*time.Millisecond)
	return known
}

// run polls until stop is closed, then does a last pass and returns what it hashed
// completely (known) and every file it sent bytes of (streamed).
func (fl *follower) run(stop <-chan struct{}, interval time.Duration) (known map[string]imageset.File, streamed map[string]bool) {
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

func (fl *follower) result() (map[string]imageset.File, map[string]bool) {
	out := map[string]imageset.File{}
	streamed := map[string]bool{}
	for name, x := range fl.files {
		streamed[name] = true
		fi, err := x.f.Stat()
		x.f.Close()
		if err != nil || x.bad || fi.Size() != x.off {
			continue
		}
		// The name must still point to the inode we read (not replaced by a rename).
		if now, err := os.Stat(filepath.Join(fl.dir, name)); err != nil || !os.SameFile(fi, now) {
			continue
		}
		f := imageset.File{Name: name, Size: x.off}
		if !fl.sizesOnly {
			f.SHA256 = hex.EncodeToString(x.h.Sum(nil))
		}
		out[name] = f
	}
	return out, streamed
}

// streamRest sends every file under images that the follower did not send completely
// (known) to sink — restarting the ones it sent part of (streamed) — hashing exactly
// the bytes it sends, and adds their digests to known. It runs after CRIU exited. A
// sink error stops the sending (the hashing goes on, for the local manifest); the sink
// keeps it to report. The error returned is about reading the local files.
func streamRest(images string, known map[string]imageset.File, streamed map[string]bool, sink Sink) (map[string]imageset.File, error) {
	var sinkErr error
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(images, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // Seal refuses it with a clear error
		}
		rel, _ := filepath.Rel(images, p)
		name := filepath.ToSlash(rel)
		if k, ok := known[name]; ok {
			if fi, err := d.Info(); err == nil && fi.Size() == k.Size {
				return nil
			}
		}
		send := func(b []byte) {
			if sinkErr == nil {
				sinkErr = sink.Append(name, b)
			}
		}
		if streamed[name] && sinkErr == nil {
			sinkErr = sink.Restart(name)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		send(nil)
		var n int64
		for {
			k, rerr := f.Read(buf)
			if k > 0 {
				h.Write(buf[:k])
				send(buf[:k])
				n += int64(k)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		known[name] = imageset.File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		return nil
	})
	return known, err
}

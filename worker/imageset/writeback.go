package imageset

import "os"

// WritebackEvery is how many bytes written into one image file start their write-out to
// disk (Writeback.Wrote).
//
// Why: a set received on a node is dirty page cache until the kernel writes it back (30 s
// later by default). Docker unmounts an overlay mount while it creates a container (the
// init layer), and unmounting an overlay syncs its whole upper file system: the
// restore's `docker create`, right after 1 GiB arrived, waited 0.45-0.6 s for that 1
// GiB to reach the disk (0.02-0.03 s with nothing dirty). Writing back while the set
// arrives leaves that create nothing to wait for (docs/dataplane.md, "Write-back").
const WritebackEvery = 8 << 20

// Writeback starts the write-out of an image file's dirty pages as it grows, without
// waiting for it. The zero value does nothing; a nil *Writeback neither.
type Writeback struct {
	f       *os.File
	pending int64
	start   func(*os.File) // startWriteback; tests count the calls
}

// NewWriteback follows f, which is being written (or which another process writes: any
// descriptor of the file will do, a read-only one included).
func NewWriteback(f *os.File) *Writeback { return &Writeback{f: f} }

// Wrote records n more bytes written into the file and starts the write-out of every
// dirty page of the file each WritebackEvery bytes. Errors are ignored: write-out is an
// optimisation, and the data stays in the page cache either way.
func (w *Writeback) Wrote(n int64) {
	if w == nil || w.f == nil {
		return
	}
	w.pending += n
	if w.pending < WritebackEvery {
		return
	}
	w.pending = 0
	if w.start != nil {
		w.start(w.f)
		return
	}
	_ = startWriteback(w.f)
}

package imageset

import (
	"hash"
	"io"
)

// hashBuffers are the buffers of one copyHashing: one being read into, one being
// written, one being hashed.
type hashBuffers [3][]byte

func newHashBuffers() *hashBuffers {
	var b hashBuffers
	for i := range b {
		b[i] = make([]byte, bufSize)
	}
	return &b
}

// writeChunk bounds each write into dst (the page cache of an image file). On this
// machine (kernel 6.18, ext4 with large folios, in a VM whose balloon reports free
// blocks to the host) the write's size picks the size of the page-cache folios it
// allocates, and from 1 MiB on those come from memory the host has to back first: 1 GiB
// written in 1 MiB writes took 4.2-5.1 s (4.2-4.5 s of it system time), in 512 KiB
// writes 0.22 s, 256 KiB 0.24 s, 128 KiB 0.26 s, 64 KiB 0.30-0.38 s (same file system,
// one process writing zeros; docs/dataplane.md, "Write size"). Reads keep their 1 MiB
// buffers: fewer hand-offs to the hashing goroutine.
const writeChunk = 256 << 10

// copyHashing copies src to dst until src ends (io.EOF) or fails, and feeds every
// byte written to h, hashing in a goroutine of its own while this one reads and writes
// the next buffers. Doing both in one goroutine made the receiver the slowest step of
// a migration here: sha256 of 1 GiB costs 0.81 CPU-s and its write into the page cache
// 0.23-1.2 s, one after the other (benchmarks/dataplane/RESULTS.md). Every byte written
// to dst is hashed, in order, by the time copyHashing returns; src's errors other than
// io.EOF are returned as they are (io.ErrUnexpectedEOF of a cut stream included). wb
// (may be nil) starts the write-out of what was written as it goes.
func copyHashing(dst io.Writer, src io.Reader, h hash.Hash, bufs *hashBuffers, wb *Writeback) (written int64, err error) {
	free := make(chan []byte, len(bufs))
	for _, b := range bufs {
		free <- b
	}
	work := make(chan []byte, len(bufs))
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for p := range work {
			h.Write(p)
			free <- p[:cap(p)]
		}
	}()
	defer func() {
		close(work)
		<-hashed
	}()
	for {
		buf := <-free
		// Fill the buffer (a socket hands out a few KiB per read): fewer, larger
		// writes and hand-offs.
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = src.Read(buf[n:])
			n += k
		}
		if n == 0 {
			free <- buf
		} else {
			work <- buf[:n]
			for off := 0; off < n; {
				end := min(off+writeChunk, n)
				k, werr := dst.Write(buf[off:end])
				written += int64(k)
				wb.Wrote(int64(k))
				if werr == nil && k != end-off {
					werr = io.ErrShortWrite
				}
				if werr != nil {
					return written, werr
				}
				off = end
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

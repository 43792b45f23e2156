package imageset

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestCopyHashingWritesAndHashesEveryByteInOrder: for sizes around the buffer size and
// readers handing out odd chunks, dst gets exactly src and h its sha256.
func TestCopyHashingWritesAndHashesEveryByteInOrder(t *testing.T) {
	bufs := newHashBuffers()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 12345, 7 * bufSize} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for name, src := range map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"one byte": iotest.OneByteReader(bytes.NewReader(data[:min(size, 70000)])),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
		} {
			want := data
			if name == "one byte" {
				want = data[:min(size, 70000)]
			}
			var dst boundedWrites
			h := sha256.New()
			n, err := copyHashing(&dst, src, h, bufs, nil)
			if err != nil || n != int64(len(want)) || !bytes.Equal(dst.Bytes(), want) {
				t.Fatalf("size %d %s: wrote %d (err %v), equal %v", size, name, n, err, bytes.Equal(dst.Bytes(), want))
			}
			// 1 MiB writes into the page cache were ~20x slower than 512 KiB ones here
			// (writeChunk's comment).
			if dst.max > 512<<10 {
				t.Fatalf("size %d %s: a write of %d bytes, want at most 512 KiB (writeChunk)", size, name, dst.max)
			}
			if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("size %d %s: wrong sha256", size, name)
			}
		}
	}
}

// boundedWrites is a bytes.Buffer recording its largest write.
type boundedWrites struct {
	bytes.Buffer
	max int
}

func (b *boundedWrites) Write(p []byte) (int, error) {
	b.max = max(b.max, len(p))
	return b.Buffer.Write(p)
}

// TestCopyHashingErrors: a cut stream's error comes back as it is, with what was
// written; a failing write (a full disk) stops the copy with its error.
func TestCopyHashingErrors(t *testing.T) {
	bufs := newHashBuffers()
	data := bytes.Repeat([]byte("x"), 2*bufSize+10)
	cut := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(io.ErrUnexpectedEOF))
	var dst bytes.Buffer
	n, err := copyHashing(&dst, cut, sha256.New(), bufs, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != int64(len(data)) || dst.Len() != len(data) {
		t.Fatalf("cut stream: wrote %d, err %v; want %d and io.ErrUnexpectedEOF", n, err, len(data))
	}
	full := errors.New("no space left on device")
	n, err = copyHashing(&failingWriter{left: bufSize, err: full}, bytes.NewReader(data), sha256.New(), bufs, nil)
	if !errors.Is(err, full) || n != bufSize {
		t.Fatalf("full disk: wrote %d, err %v; want %d and the write error", n, err, bufSize)
	}
	// The buffers are still usable afterwards (none kept by a finished copy).
	if _, err := copyHashing(io.Discard, bytes.NewReader(data), sha256.New(), bufs, nil); err != nil {
		t.Fatal(err)
	}
}

// failingWriter accepts left bytes, then fails with err.
type failingWriter struct {
	left int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	k := min(len(p), w.left)
	w.left -= k
	if k < len(p) {
		return k, w.err
	}
	return k, nil
}

// BenchmarkReceiveHashing: writing a 256 MiB file into the page cache while hashing it,
// one goroutine (io.MultiWriter, the old receiver: the baseline) against copyHashing.
// go test -bench ReceiveHashing ./worker/imageset; compare ns/op of the two.
func BenchmarkReceiveHashing(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 16<<20) // 256 MiB
	dir := b.TempDir()
	bufs := newHashBuffers()
	for _, mode := range []string{"serial", "pipelined"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				f, err := os.Create(filepath.Join(dir, "f"))
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				if mode == "serial" {
					_, err = io.CopyBuffer(io.MultiWriter(f, h), struct{ io.Reader }{bytes.NewReader(data)}, bufs[0])
				} else {
					_, err = copyHashing(f, struct{ io.Reader }{bytes.NewReader(data)}, h, bufs, nil)
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package imageset

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWritebackStartsEveryWritebackEveryBytes(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "pages-1.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []*os.File
	wb := &Writeback{f: f, start: func(g *os.File) { calls = append(calls, g) }}
	// Through the receivers' copy: 2.5 x WritebackEvery bytes start two write-outs.
	data := bytes.Repeat([]byte{7}, WritebackEvery*5/2)
	n, err := copyHashing(f, bytes.NewReader(data), sha256.New(), newHashBuffers(), wb)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copyHashing = %d, %v", n, err)
	}
	if len(calls) != 2 || calls[0] != f || calls[1] != f {
		t.Fatalf("write-out started %d times (files %v), want 2 times on the written file", len(calls), calls)
	}
	wb.Wrote(WritebackEvery/2 - 1)
	if len(calls) != 2 {
		t.Fatalf("write-out started before WritebackEvery more bytes")
	}
	wb.Wrote(1)
	if len(calls) != 3 {
		t.Fatalf("write-out not started after WritebackEvery more bytes (%d calls)", len(calls))
	}
	var none *Writeback
	none.Wrote(WritebackEvery) // nil: nothing, no panic
	(&Writeback{}).Wrote(WritebackEvery)
}

// The page-server side starts the write-out through the read-only descriptor it hashes
// with (dump.Follow): the kernel must accept that.
func TestStartWritebackOnReadOnlyDescriptor(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: sync_file_range is Linux-only; elsewhere write-out is left to the kernel")
	}
	p := filepath.Join(t.TempDir(), "pages-1.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<20), FileMode); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := startWriteback(f); err != nil {
		t.Fatalf("sync_file_range on a read-only descriptor: %v", err)
	}
	f.Close()
	if err := startWriteback(f); err == nil {
		t.Fatal("startWriteback on a closed file reported no error")
	}
}

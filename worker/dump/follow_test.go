package dump

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFollowerHashesGrowingFiles: a writer appends while the follower hashes; replaced
// and rewritten files are not reported (Seal hashes them itself).
func TestFollowerHashesGrowingFiles(t *testing.T) {
	dir := t.TempDir()
	stop := make(chan struct{})
	res := make(chan map[string]struct {
		size int64
		sum  string
	}, 1)
	go func() {
		got := newFollower(dir).run(stop, time.Millisecond)
		m := map[string]struct {
			size int64
			sum  string
		}{}
		for k, v := range got {
			m[k] = struct {
				size int64
				sum  string
			}{v.Size, v.SHA256}
		}
		res <- m
	}()
	f, err := os.Create(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for i := 0; i < 200; i++ {
		chunk := bytes.Repeat([]byte{byte(i)}, 64<<10)
		f.Write(chunk)
		all.Write(chunk)
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	f.Close()
	// A file replaced by rename after the follower saw it.
	os.WriteFile(filepath.Join(dir, "inv.img"), []byte("old"), 0o600)
	time.Sleep(5 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "inv.tmp"), []byte("new"), 0o600)
	os.Rename(filepath.Join(dir, "inv.tmp"), filepath.Join(dir, "inv.img"))
	close(stop)
	got := <-res
	want := sha256.Sum256(all.Bytes())
	if p := got["pages-1.img"]; p.size != int64(all.Len()) || p.sum != hex.EncodeToString(want[:]) {
		t.Fatalf("pages-1.img: %+v", p)
	}
	if p, ok := got["inv.img"]; ok && p.sum != hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("new")); return s[:] }()) {
		t.Fatalf("replaced file reported with the old content's digest")
	}
}

package imageset_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// liveStream sends the set at dir as a live stream the way a streaming dump does:
// pages-1.img in chunks interleaved with the other file, a restart, manifest last.
func liveStream(t *testing.T, dir string, mutate func(m *imageset.Manifest, lw *imageset.LiveWriter)) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	lw := imageset.NewLiveWriter(&out)
	pages, err := os.ReadFile(filepath.Join(dir, "images", "pages-1.img"))
	must(t, err)
	must(t, lw.Append("pages-1.img", []byte("garbage before a restart")))
	must(t, lw.Restart("pages-1.img"))
	must(t, lw.Append("pages-1.img", pages[:1<<20]))
	must(t, lw.Append("sub/a.img", nil))
	must(t, lw.Append("pages-1.img", pages[1<<20:]))
	must(t, lw.Append("sub/a.img", []byte("a")))
	m, err := imageset.ReadManifest(dir)
	must(t, err)
	if mutate != nil {
		mutate(m, lw)
	}
	mb, err := json.Marshal(m)
	must(t, err)
	must(t, lw.Finish(mb))
	return &out
}

func TestLiveStreamRoundTrip(t *testing.T) {
	src := makeSet(t)
	dst := filepath.Join(t.TempDir(), "sets", "in")
	v, err := imageset.ReceiveLive(liveStream(t, src, nil), dst)
	if err != nil {
		t.Fatal(err)
	}
	if v.Dir() != dst || len(v.Manifest().Files) != 2 {
		t.Fatalf("received %v", v)
	}
	if _, err := imageset.Verify(dst); err != nil {
		t.Fatalf("received set does not verify: %v", err)
	}
	// Nothing changed since: the stat recheck accepts it without re-reading.
	if _, err := imageset.Recheck(v); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dst, filepath.Join(dst, "images"), filepath.Join(dst, "images", "sub")} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != imageset.DirMode {
			t.Errorf("%s mode %v", p, fi.Mode().Perm())
		}
	}
	for _, p := range []string{filepath.Join(dst, "images", "pages-1.img"), filepath.Join(dst, "manifest.json")} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != imageset.FileMode {
			t.Errorf("%s mode %v", p, fi.Mode().Perm())
		}
	}
}

// frame builds one raw frame, for streams a LiveWriter refuses to write.
func frame(op byte, name string, data []byte) []byte {
	b := []byte{op}
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func TestLiveStreamRejects(t *testing.T) {
	src := makeSet(t)
	good := liveStream(t, src, nil).Bytes()
	cases := map[string]struct {
		stream []byte
		want   error
	}{
		"wrong digest": {liveStream(t, src, func(m *imageset.Manifest, _ *imageset.LiveWriter) {
			m.Files[0].SHA256 = strings.Repeat("0", 64)
		}).Bytes(), imageset.ErrChecksum},
		"file not sent": {liveStream(t, src, func(m *imageset.Manifest, _ *imageset.LiveWriter) {
			m.Files = append(m.Files, imageset.File{Name: "z.img", SHA256: strings.Repeat("0", 64)})
		}).Bytes(), imageset.ErrMissing},
		"file not in the manifest": {liveStream(t, src, func(_ *imageset.Manifest, lw *imageset.LiveWriter) {
			must(t, lw.Append("evil.img", []byte("x")))
		}).Bytes(), imageset.ErrMissing},
		"cut before the manifest": {good[:len(good)-300], imageset.ErrMissing},
		"cut inside a file":       {good[:2<<20], imageset.ErrMissing},
		"not a live stream":       {[]byte("PK\x03\x04 something else"), imageset.ErrManifest},
		"path escape":             {append([]byte("swarmckpt-live-set 1\n"), frame('a', "../../etc/x", []byte("x"))...), imageset.ErrMissing},
		"absolute path":           {append([]byte("swarmckpt-live-set 1\n"), frame('a', "/etc/x", []byte("x"))...), imageset.ErrMissing},
		"unknown frame":           {append([]byte("swarmckpt-live-set 1\n"), frame('x', "a", nil)...), imageset.ErrManifest},
		"data after the manifest": {append(append([]byte(nil), good...), 'a'), imageset.ErrMissing},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "in")
			_, err := imageset.ReceiveLive(bytes.NewReader(c.stream), dst)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if _, serr := os.Stat(dst); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("rejected stream left %s behind", dst)
			}
		})
	}
}

func TestLiveWriterRefusesBadNamesAndSticks(t *testing.T) {
	var out bytes.Buffer
	lw := imageset.NewLiveWriter(&out)
	if err := lw.Append("../x", nil); err == nil {
		t.Fatal("a name escaping images/ was accepted")
	}
	if err := lw.Append("ok.img", nil); err == nil || lw.Err() == nil {
		t.Fatal("writer went on after an error")
	}
}

// TestLiveStreamAdoptsPreSentFiles: a file the closing manifest lists but the stream
// did not send is taken from the pre-sent set when it holds it with the same size and
// sha256 (moved, the received set verifies); with other content, or without a
// pre-sent set, the receive fails as for any missing file and keeps nothing.
func TestLiveStreamAdoptsPreSentFiles(t *testing.T) {
	src := makeSet(t)
	pre := filepath.Join(t.TempDir(), "pre")
	must(t, os.MkdirAll(filepath.Join(pre, "images", "pre", "0"), imageset.DirMode))
	must(t, os.WriteFile(filepath.Join(pre, "images", "pre", "0", "pages-1.img"), []byte("round 0"), imageset.FileMode))
	must(t, imageset.Seal(pre, &imageset.Manifest{PreDumps: 1}))
	pv, err := imageset.Check(pre)
	must(t, err)
	withPre := func(content string) func(m *imageset.Manifest, lw *imageset.LiveWriter) {
		return func(m *imageset.Manifest, _ *imageset.LiveWriter) {
			sum := sha256.Sum256([]byte(content))
			m.Files = append(m.Files, imageset.File{Name: "pre/0/pages-1.img", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])})
			sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
			m.PreDumps = 1
		}
	}
	// Other content than the pre-sent file: refused, nothing kept, the pre-sent file untouched.
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := imageset.ReceiveLiveAdopting(liveStream(t, src, withPre("round 0, changed")), bad, pv); !errors.Is(err, imageset.ErrMissing) {
		t.Fatalf("a pre-sent file with other content: %v, want ErrMissing", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a refused receive kept %s: %v", bad, err)
	}
	if _, err := imageset.ReceiveLive(liveStream(t, src, withPre("round 0")), filepath.Join(t.TempDir(), "nopre")); !errors.Is(err, imageset.ErrMissing) {
		t.Fatalf("without a pre-sent set: %v, want ErrMissing", err)
	}
	dst := filepath.Join(t.TempDir(), "in")
	v, err := imageset.ReceiveLiveAdopting(liveStream(t, src, withPre("round 0")), dst, pv)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Manifest().Files) != 3 || v.Manifest().PreDumps != 1 {
		t.Fatalf("received %v", v)
	}
	if _, err := imageset.Verify(dst); err != nil {
		t.Fatalf("the set with the adopted file does not verify: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pre, "images", "pre", "0", "pages-1.img")); !os.IsNotExist(err) {
		t.Fatalf("the adopted file is still in the pre-sent set: %v", err)
	}
	if _, err := imageset.Recheck(v); err != nil {
		t.Fatalf("recheck of the set with the adopted file: %v", err)
	}
}

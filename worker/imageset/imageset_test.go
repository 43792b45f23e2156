package imageset_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

func makeSet(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "set")
	must(t, os.MkdirAll(filepath.Join(dir, "images", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "images", "pages-1.img"), bytes.Repeat([]byte("x"), 3<<20+5), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "images", "sub", "a.img"), []byte("a"), 0o644))
	must(t, imageset.Seal(dir, &imageset.Manifest{ContainerID: "cid", Spec: container.Spec{Image: "img"}}))
	return dir
}

func TestSealAndVerify(t *testing.T) {
	dir := makeSet(t)
	m, err := imageset.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Name != "pages-1.img" || m.Files[1].Name != "sub/a.img" || m.TotalBytes() != 3<<20+6 {
		t.Fatalf("files = %+v", m.Files)
	}
	for _, p := range []string{dir, filepath.Join(dir, "images", "sub")} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != imageset.DirMode {
			t.Errorf("%s mode %v", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "images", "pages-1.img")); fi.Mode().Perm() != imageset.FileMode {
		t.Errorf("file mode %v", fi.Mode().Perm())
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	cases := map[string]struct {
		mutate func(dir string)
		want   error
	}{
		"flipped byte": {func(d string) {
			f, _ := os.OpenFile(filepath.Join(d, "images", "pages-1.img"), os.O_WRONLY, 0)
			f.WriteAt([]byte("y"), 1000)
			f.Close()
		}, imageset.ErrChecksum},
		"truncated": {func(d string) { os.Truncate(filepath.Join(d, "images", "pages-1.img"), 10) }, imageset.ErrChecksum},
		"missing":   {func(d string) { os.Remove(filepath.Join(d, "images", "sub", "a.img")) }, imageset.ErrMissing},
		"extra":     {func(d string) { os.WriteFile(filepath.Join(d, "images", "evil.img"), nil, 0o600) }, imageset.ErrMissing},
		"manifest":  {func(d string) { os.WriteFile(filepath.Join(d, "manifest.json"), []byte("{"), 0o600) }, imageset.ErrManifest},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := makeSet(t)
			c.mutate(dir)
			if _, err := imageset.Check(dir); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestStreamRoundTrip(t *testing.T) {
	src := makeSet(t)
	var buf bytes.Buffer
	must(t, imageset.Send(&buf, src))
	dst := filepath.Join(t.TempDir(), "recv")
	v, err := imageset.Receive(&buf, dst)
	if err != nil || !v.Valid() || v.Dir() != dst {
		t.Fatalf("receive: %v %v", v, err)
	}
	if _, err := imageset.Verify(dst); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveRejectsCorruptOrTruncatedStream(t *testing.T) {
	src := makeSet(t)
	var buf bytes.Buffer
	must(t, imageset.Send(&buf, src))
	full := buf.Bytes()
	corrupt := bytes.Clone(full)
	i := bytes.Index(corrupt, bytes.Repeat([]byte("x"), 100))
	corrupt[i+50] = 'z'
	for name, c := range map[string]struct {
		data []byte
		want error
	}{
		"corrupt":   {corrupt, imageset.ErrChecksum},
		"truncated": {full[:len(full)/2], imageset.ErrMissing},
	} {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "recv")
			_, err := imageset.Receive(io.MultiReader(bytes.NewReader(c.data)), dst)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("half-received %s left behind", dst)
			}
		})
	}
}

func TestNamesCannotEscape(t *testing.T) {
	for _, n := range []string{"../x", "/etc/passwd", "a/../../b", "", "a//b"} {
		if imageset.CheckName(n) == nil {
			t.Errorf("CheckName(%q) accepted", n)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecheckFallsBackToFullHashOnChange(t *testing.T) {
	src := makeSet(t)
	var buf bytes.Buffer
	must(t, imageset.Send(&buf, src))
	dst := filepath.Join(t.TempDir(), "recv")
	v, err := imageset.Receive(&buf, dst)
	must(t, err)
	if _, err := imageset.Recheck(v); err != nil {
		t.Fatalf("unchanged set: %v", err)
	}
	// Same size, new content (a tamper): the stamp changes, Recheck re-hashes and refuses.
	p := filepath.Join(dst, "images", "sub", "a.img")
	time.Sleep(10 * time.Millisecond)
	must(t, os.WriteFile(p, []byte("b"), 0o600))
	if _, err := imageset.Recheck(v); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("tampered set: %v, want ErrChecksum", err)
	}
}

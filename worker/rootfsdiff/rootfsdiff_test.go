package rootfsdiff

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips, loudly, a test that needs root (chown, mknod, trusted.* xattrs).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP INTEGRATION: needs root (chown, mknod, trusted.overlay.* xattrs)")
	}
}

// tree describes every entry under root: type, permission bits, owner, size, content
// digest, link target, device number, xattrs, and the modification time of files.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s perm=%o uid=%d gid=%d", fi.Mode().Type(), sys.Mode&0o7777, sys.Uid, sys.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha=%x mtime=%d", len(b), sha256.Sum256(b), fi.ModTime().UnixNano())
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode()&fs.ModeDevice != 0:
			desc += fmt.Sprintf(" rdev=%d", sys.Rdev)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			xs, err := xattrs(p)
			if err != nil {
				return err
			}
			var ks []string
			for k, v := range xs {
				ks = append(ks, k+"="+v)
			}
			sort.Strings(ks)
			desc += " xattrs=" + strings.Join(ks, ",")
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if want[n] != got[n] {
			t.Errorf("%s:\n want %q\n  got %q", n, want[n], got[n])
		}
	}
}

func write(t *testing.T, p string, b []byte, perm fs.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, uint32(perm.Perm())|modeBits(perm)); err != nil {
		t.Fatal(err)
	}
}

func modeBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		b |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		b |= syscall.S_ISVTX
	}
	return b
}

// fakeUpper builds, without overlayfs, an upper directory holding every kind of entry.
func fakeUpper(t *testing.T, big int) string {
	t.Helper()
	up := t.TempDir()
	write(t, filepath.Join(up, "etc/app.conf"), []byte("key=value\n"), 0o644, 0, 0)
	write(t, filepath.Join(up, "srv/data/db"), []byte("records"), 0o600, 1234, 5678)
	write(t, filepath.Join(up, "usr/bin/suid"), []byte("#!/bin/sh\n"), 0o755|fs.ModeSetuid, 0, 0)
	if err := os.Chmod(filepath.Join(up, "srv"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(up, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(filepath.Join(up, "tmp"), 0o777|syscall.S_ISVTX); err != nil {
		t.Fatal(err)
	}
	// A big file (content that does not compress), written in pieces.
	r := rand.New(rand.NewPCG(1, 2))
	blk := make([]byte, 1<<20)
	f, err := os.Create(filepath.Join(up, "srv/data/big"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < big; n += len(blk) {
		for i := range blk {
			blk[i] = byte(r.Uint32())
		}
		if _, err := f.Write(blk[:min(len(blk), big-n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink("../etc/app.conf", filepath.Join(up, "srv/conf")))
	must(t, os.Symlink("/nowhere/at/all", filepath.Join(up, "srv/dangling")))
	must(t, os.Lchown(filepath.Join(up, "srv/dangling"), 1234, 5678))
	must(t, os.Link(filepath.Join(up, "srv/data/db"), filepath.Join(up, "srv/db.link")))
	must(t, syscall.Mkfifo(filepath.Join(up, "srv/fifo"), 0o620))
	must(t, syscall.Chmod(filepath.Join(up, "srv/fifo"), 0o620))
	// Overlay's own entries: a whiteout (deleted file of the image) and an opaque
	// directory (deleted and made again), plus a user xattr to carry.
	must(t, syscall.Mknod(filepath.Join(up, "etc/removed"), syscall.S_IFCHR, 0))
	must(t, os.MkdirAll(filepath.Join(up, "var/cache"), 0o755))
	must(t, syscall.Setxattr(filepath.Join(up, "var/cache"), xattrOpaque, []byte("y"), 0))
	write(t, filepath.Join(up, "var/cache/new"), []byte("fresh"), 0o640, 0, 33)
	must(t, syscall.Setxattr(filepath.Join(up, "etc/app.conf"), "user.origin", []byte("restored"), 0))
	// A socket is skipped.
	must(t, syscall.Mknod(filepath.Join(up, "srv/sock"), syscall.S_IFSOCK|0o600, 0))
	// Times last: children changed their directories'.
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	must(t, os.Chtimes(filepath.Join(up, "srv/data"), old, old))
	must(t, os.Chtimes(filepath.Join(up, "etc/app.conf"), old, old))
	return up
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPackApplyUpper: every kind of entry survives Pack then Apply into an empty
// upper directory, whiteouts and opaque directories as overlay's own.
func TestPackApplyUpper(t *testing.T) {
	needRoot(t)
	const big = 24<<20 + 12345
	up := fakeUpper(t, big)
	tarPath := filepath.Join(t.TempDir(), FileName)
	st, err := PackFile(tarPath, up)
	if err != nil {
		t.Fatal(err)
	}
	if st.Whiteouts != 1 || st.Opaque != 1 || !slices.Equal(st.Skipped, []string{"srv/sock"}) {
		t.Fatalf("pack stats %+v: want 1 whiteout, 1 opaque dir, srv/sock skipped", st)
	}
	if st.Bytes < big {
		t.Fatalf("pack carried %d bytes of content, the big file alone has %d", st.Bytes, big)
	}
	if fi, err := os.Stat(tarPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tar %v mode %v: want 0600", err, fi.Mode())
	}
	if b, err := os.ReadFile(tarPath); err != nil || int64(len(b)) != st.Size || fmt.Sprintf("%x", sha256.Sum256(b)) != st.SHA256 {
		t.Fatalf("PackFile reports size %d sha256 %s; the file has %d bytes (%v)", st.Size, st.SHA256, len(b), err)
	}
	must(t, os.Remove(filepath.Join(up, "srv/sock")))
	want := tree(t, up)

	dst := t.TempDir()
	ast, err := ApplyFile(tarPath, dst, Upper)
	if err != nil {
		t.Fatal(err)
	}
	if ast.Whiteouts != 1 || ast.Opaque != 1 || ast.Bytes != st.Bytes {
		t.Fatalf("apply stats %+v, pack stats %+v", ast, st)
	}
	got := tree(t, dst)
	diffTrees(t, want, got)
	var a, b syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(dst, "srv/data/db"), &a))
	must(t, syscall.Stat(filepath.Join(dst, "srv/db.link"), &b))
	if a.Ino != b.Ino {
		t.Errorf("hard link not kept: srv/data/db inode %d, srv/db.link inode %d", a.Ino, b.Ino)
	}
}

// TestApplyRootfs: into a plain root filesystem, a whiteout deletes the path and an
// opaque directory loses what the tar does not bring; the rest is replaced.
func TestApplyRootfs(t *testing.T) {
	needRoot(t)
	up := fakeUpper(t, 1<<20)
	must(t, os.Remove(filepath.Join(up, "srv/sock")))
	var tarball bytes.Buffer
	if _, err := Pack(&tarball, up); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write(t, filepath.Join(root, "etc/removed"), []byte("from the image"), 0o644, 0, 0)
	write(t, filepath.Join(root, "etc/app.conf"), []byte("image version, longer than the new one"), 0o600, 7, 7)
	write(t, filepath.Join(root, "etc/untouched"), []byte("stays"), 0o644, 0, 0)
	write(t, filepath.Join(root, "var/cache/old/deep"), []byte("hidden by the opaque dir"), 0o644, 0, 0)
	write(t, filepath.Join(root, "var/cache/stale"), []byte("hidden by the opaque dir"), 0o644, 0, 0)
	must(t, os.MkdirAll(filepath.Join(root, "srv/conf"), 0o755)) // a dir where the tar has a symlink
	if _, err := Apply(&tarball, root, Rootfs); err != nil {
		t.Fatal(err)
	}
	got := tree(t, root)
	want := tree(t, up)
	delete(want, "etc/removed") // a whiteout: the path is gone
	for n := range got {
		if strings.HasPrefix(n, "var/cache/") && n != "var/cache/new" {
			t.Errorf("%s survived its opaque directory", n)
		}
	}
	if _, ok := got["etc/removed"]; ok {
		t.Errorf("etc/removed survived its whiteout")
	}
	if !strings.Contains(got["etc/untouched"], "size=5") {
		t.Errorf("etc/untouched changed: %s", got["etc/untouched"])
	}
	delete(got, "etc/untouched")
	// The opaque marker is not carried as an xattr into a mounted rootfs.
	want["var/cache"] = strings.Replace(want["var/cache"], xattrOpaque+"=y", "", 1)
	diffTrees(t, want, got)
}

// TestApplyRefusesEscapes: names outside root, or through a symlink, are refused
// before anything is written there.
func TestApplyRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdrs []tar.Header
	}{
		{"dotdot", []tar.Header{{Name: "../escaped", Typeflag: tar.TypeReg}}},
		{"dotdot inside", []tar.Header{{Name: "a/../../escaped", Typeflag: tar.TypeReg}}},
		{"whiteout dotdot", []tar.Header{{Name: "a/.wh...", Typeflag: tar.TypeReg}}},
		{"through symlink", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: ".."}, {Name: "l/escaped", Typeflag: tar.TypeReg}}},
		{"hard link out", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			must(t, os.Mkdir(root, 0o755))
			must(t, os.WriteFile(filepath.Join(parent, "outside"), nil, 0o600))
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			for _, h := range tc.hdrs {
				h.Mode = 0o644
				must(t, tw.WriteHeader(&h))
			}
			must(t, tw.Close())
			_, err := Apply(&b, root, Rootfs)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Apply: %v, want ErrUnsafe", err)
			}
			if _, err := os.Stat(filepath.Join(parent, "escaped")); err == nil {
				t.Fatal("a file was written outside root")
			}
		})
	}
}

// TestPackEmpty: an empty upper directory is a valid, tiny tar that applies to nothing.
func TestPackEmpty(t *testing.T) {
	var b bytes.Buffer
	st, err := Pack(&b, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 0 || b.Len() > 1024 {
		t.Fatalf("empty diff: %+v, %d bytes", st, b.Len())
	}
	dst := t.TempDir()
	if _, err := Apply(&b, dst, Upper); err != nil {
		t.Fatal(err)
	}
	if e, _ := os.ReadDir(dst); len(e) != 0 {
		t.Fatalf("applying an empty diff wrote %v", e)
	}
}

// TestPackRefusesRedirect: an overlay redirect cannot be carried; Pack says so.
func TestPackRefusesRedirect(t *testing.T) {
	needRoot(t)
	up := t.TempDir()
	must(t, os.Mkdir(filepath.Join(up, "moved"), 0o755))
	must(t, syscall.Setxattr(filepath.Join(up, "moved"), "trusted.overlay.redirect", []byte("/orig"), 0))
	if _, err := Pack(io.Discard, up); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Pack: %v, want ErrUnsupported", err)
	}
}

// BenchmarkPackApply measures the cost docs/dataplane.md quotes: Pack and Apply of an
// empty upper directory and of one holding 100 MiB (one file) to a file on disk.
func BenchmarkPackApply(b *testing.B) {
	for _, size := range []int{0, 100 << 20} {
		up := b.TempDir()
		if size > 0 {
			blk := make([]byte, size)
			r := rand.New(rand.NewPCG(3, 4))
			for i := range blk {
				blk[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(filepath.Join(up, "data"), blk, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("pack-%dMiB", size>>20), func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < b.N; i++ {
				p := filepath.Join(dir, fmt.Sprint(i))
				if _, err := PackFile(p, up); err != nil {
					b.Fatal(err)
				}
				fi, _ := os.Stat(p)
				b.ReportMetric(float64(fi.Size()), "tar-bytes")
				_ = os.Remove(p)
			}
		})
		b.Run(fmt.Sprintf("apply-%dMiB", size>>20), func(b *testing.B) {
			p := filepath.Join(b.TempDir(), FileName)
			if _, err := PackFile(p, up); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				dst := b.TempDir()
				if _, err := ApplyFile(p, dst, Upper); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

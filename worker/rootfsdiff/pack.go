package rootfsdiff

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FileName is the name of the tar in an image set's images/ directory.
const FileName = "rootfs-diff.tar"

// OCI layer whiteout names.
const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
)

// Overlay's own xattrs: the opaque marker, and the prefix of every overlay xattr (never
// carried as such: they describe the layer, not the file).
const (
	xattrOpaque  = "trusted.overlay.opaque"
	xattrOverlay = "trusted.overlay."
	paxXattr     = "SCHILY.xattr."
)

// Sentinel errors.
var (
	// ErrUnsafe: a tar entry names a path outside the target (absolute, "..", or
	// through a symlink).
	ErrUnsafe = errors.New("rootfsdiff: entry leaves the target directory")
	// ErrUnsupported: the layer holds something this format cannot carry faithfully
	// (an overlay redirect or metacopy, which Docker's overlay2 does not enable).
	ErrUnsupported = errors.New("rootfsdiff: unsupported overlay entry")
)

// Stats count what a Pack or Apply handled.
type Stats struct {
	// Entries are files, directories, links and nodes (whiteouts not included).
	Entries int
	// Whiteouts are deleted paths; Opaque are directories whose lower content is hidden.
	Whiteouts, Opaque int
	// Bytes is the content of the regular files.
	Bytes int64
	// Skipped names what was left out (sockets, names the format reserves).
	Skipped []string
	// Took is the wall time.
	Took time.Duration
	// Size and SHA256 (lowercase hex) of the tar PackFile wrote (empty for Pack).
	Size   int64
	SHA256 string
}

// PackFile writes the diff of upper into a new file path (mode 0600; an existing file
// is an error), hashing it as it writes (Stats.Size, Stats.SHA256). On error the file
// is removed.
func PackFile(path, upper string) (st Stats, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return st, fmt.Errorf("rootfsdiff: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("rootfsdiff: write %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	st, err = Pack(bw, upper)
	if err == nil {
		err = bw.Flush()
	}
	st.Size, st.SHA256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return st, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Pack writes the content of the overlay upper directory upper to w as a tar in the
// OCI layer format (see the package doc). upper itself is not an entry.
func Pack(w io.Writer, upper string) (Stats, error) {
	t0 := time.Now()
	var st Stats
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (dev, ino) -> first name, for hard links
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("rootfsdiff: %s: no stat", p)
		}
		base := filepath.Base(p)
		if strings.HasPrefix(base, whPrefix) {
			// The layer format reserves these names: such a file cannot be told from
			// a whiteout once packed.
			st.Skipped = append(st.Skipped, name)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		mode := fi.Mode()
		if mode&fs.ModeCharDevice != 0 && mode&fs.ModeDevice != 0 && sys.Rdev == 0 {
			st.Whiteouts++
			dir, b := filepath.Split(name)
			return tw.WriteHeader(&tar.Header{Name: dir + whPrefix + b, Typeflag: tar.TypeReg, Mode: 0o600,
				ModTime: fi.ModTime(), Format: tar.FormatPAX})
		}
		if mode.Type() == fs.ModeSocket {
			st.Skipped = append(st.Skipped, name)
			return nil
		}
		if mode&fs.ModeSymlink == 0 {
			for _, x := range []string{"trusted.overlay.redirect", "trusted.overlay.metacopy"} {
				if _, ok := getxattr(p, x); ok {
					return fmt.Errorf("%w: %s has %s (mount overlay without redirect_dir and metacopy)", ErrUnsupported, p, x)
				}
			}
		}
		hdr := &tar.Header{Name: name, Mode: int64(sys.Mode & 0o7777), Uid: int(sys.Uid), Gid: int(sys.Gid),
			ModTime: fi.ModTime(), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case mode.IsRegular():
			key := [2]uint64{uint64(sys.Dev), sys.Ino}
			if first, ok := links[key]; ok && sys.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			if sys.Nlink > 1 {
				links[key] = name
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case mode&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		case mode&fs.ModeDevice != 0:
			hdr.Typeflag = tar.TypeBlock
			if mode&fs.ModeCharDevice != 0 {
				hdr.Typeflag = tar.TypeChar
			}
			hdr.Devmajor, hdr.Devminor = int64(major(sys.Rdev)), int64(minor(sys.Rdev))
		default:
			st.Skipped = append(st.Skipped, name)
			return nil
		}
		opaque := false
		if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink {
			xs, err := xattrs(p)
			if err != nil {
				return err
			}
			for k, v := range xs {
				if k == xattrOpaque {
					opaque = v == "y" && d.IsDir()
					continue
				}
				if strings.HasPrefix(k, xattrOverlay) {
					continue
				}
				if hdr.PAXRecords == nil {
					hdr.PAXRecords = map[string]string{}
				}
				hdr.PAXRecords[paxXattr+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		st.Entries++
		if opaque {
			st.Opaque++
			if err := tw.WriteHeader(&tar.Header{Name: name + "/" + whOpaque, Typeflag: tar.TypeReg, Mode: 0o600,
				ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size announced: a file that changed size since its stat would
		// corrupt the tar (the container is frozen or stopped while this runs).
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%s shrank from %d to %d bytes while packed", p, hdr.Size, n)
		}
		st.Bytes += n
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	st.Took = time.Since(t0)
	if err != nil {
		return st, fmt.Errorf("rootfsdiff: pack %s: %w", upper, err)
	}
	return st, nil
}

func major(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func minor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }
func mkdev(major, minor uint64) uint64 {
	return (major&0xfff)<<8 | (major&^0xfff)<<32 | (minor & 0xff) | (minor&^0xff)<<12
}

// getxattr reads one extended attribute of p (following no symlink: callers pass
// no symlinks).
func getxattr(p, name string) (string, bool) {
	buf := make([]byte, 256)
	for {
		n, err := syscall.Getxattr(p, name, buf)
		if errors.Is(err, syscall.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
}

// xattrs returns every extended attribute of p (none where the filesystem has none).
func xattrs(p string) (map[string]string, error) {
	sz, err := syscall.Listxattr(p, nil)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = syscall.Listxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k == "" {
			continue
		}
		if v, ok := getxattr(p, k); ok {
			out[k] = v
		}
	}
	return out, nil
}

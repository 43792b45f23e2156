package rootfsdiff

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Target says what Apply writes into.
type Target int

const (
	// Upper is the overlay upper directory of a container that is not running (nothing
	// is mounted on it): whiteouts and opaque directories are written as overlay's.
	Upper Target = iota
	// Rootfs is a mounted root filesystem: a whiteout deletes the path, an opaque
	// directory loses the entries the tar does not bring.
	Rootfs
)

func (t Target) String() string {
	if t == Rootfs {
		return "rootfs"
	}
	return "upper"
}

// ApplyFile is Apply reading the tar at path.
func ApplyFile(path, root string, t Target) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("rootfsdiff: %w", err)
	}
	defer f.Close()
	return Apply(f, root, t)
}

// Apply unpacks a tar written by Pack into root (see Target). Entries are written
// with their owners, permission bits, times and extended attributes; a path that
// exists is replaced (a directory is kept and takes the entry's metadata).
func Apply(r io.Reader, root string, t Target) (Stats, error) {
	t0 := time.Now()
	a := applier{root: root, target: t, written: map[string]bool{}}
	err := a.run(tar.NewReader(r))
	a.st.Took = time.Since(t0)
	if err != nil {
		return a.st, fmt.Errorf("rootfsdiff: apply into %s %s: %w", t, root, err)
	}
	return a.st, nil
}

type applier struct {
	root    string
	target  Target
	st      Stats
	written map[string]bool // names this tar wrote (an opaque dir keeps them)
	dirs    []*tar.Header   // directory times are set last
}

func (a *applier) run(tr *tar.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if err := a.parents(dir); err != nil {
			return err
		}
		switch {
		case base == whOpaque:
			a.st.Opaque++
			if err := a.opaque(dir); err != nil {
				return err
			}
			continue
		case strings.HasPrefix(base, whPrefix):
			a.st.Whiteouts++
			if err := a.whiteout(path.Join(dir, base[len(whPrefix):])); err != nil {
				return err
			}
			continue
		}
		if err := a.entry(tr, hdr, name, buf); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		a.st.Entries++
		a.written[name] = true
	}
	// Children changed their directories' times: set those last, deepest first.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		h := a.dirs[i]
		name, _ := cleanName(h.Name)
		if err := os.Chtimes(a.join(name), atime(h), h.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// cleanName returns the slash-separated relative path of a tar name, or ErrUnsafe.
func cleanName(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if c == "." || c == "" || path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q", ErrUnsafe, n)
	}
	return c, nil
}

func (a *applier) join(name string) string { return filepath.Join(a.root, filepath.FromSlash(name)) }

// parents makes sure every directory of dir exists as a real directory (not a
// symlink, which could lead out of root); missing ones are created 0755.
func (a *applier) parents(dir string) error {
	if dir == "" {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(dir, "/") {
		cur = path.Join(cur, part)
		p := a.join(cur)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symlink", ErrUnsafe, cur)
		case !fi.IsDir():
			return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, cur)
		}
	}
	return nil
}

func (a *applier) opaque(dir string) error {
	p := a.root
	if dir != "" {
		p = a.join(dir)
	}
	if a.target == Upper {
		return syscall.Setxattr(p, xattrOpaque, []byte("y"), 0)
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !a.written[path.Join(dir, e.Name())] {
			if err := os.RemoveAll(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) whiteout(name string) error {
	if _, err := cleanName(name); err != nil {
		return err
	}
	p := a.join(name)
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if a.target == Rootfs {
		return nil
	}
	return syscall.Mknod(p, syscall.S_IFCHR, 0)
}

func (a *applier) entry(tr *tar.Reader, hdr *tar.Header, name string, buf []byte) error {
	p := a.join(name)
	fi, lerr := os.Lstat(p)
	exists := lerr == nil
	if exists && !(hdr.Typeflag == tar.TypeDir && fi.IsDir()) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists || !fi.IsDir() {
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		}
		a.dirs = append(a.dirs, hdr)
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(f, tr, buf)
		a.st.Bytes += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		return errors.Join(os.Symlink(hdr.Linkname, p), os.Lchown(p, hdr.Uid, hdr.Gid))
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return err
		}
		return os.Link(a.join(target), p)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := map[byte]uint32{tar.TypeChar: syscall.S_IFCHR, tar.TypeBlock: syscall.S_IFBLK, tar.TypeFifo: syscall.S_IFIFO}[hdr.Typeflag]
		if err := syscall.Mknod(p, mode|0o600, int(mkdev(uint64(hdr.Devmajor), uint64(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		return fmt.Errorf("tar entry type %q not supported", hdr.Typeflag)
	}
	// Owner before mode: chown clears setuid and setgid.
	if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := syscall.Chmod(p, uint32(hdr.Mode&0o7777)); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, paxXattr)
		if !ok || strings.HasPrefix(x, xattrOverlay) {
			continue
		}
		if err := syscall.Setxattr(p, x, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", x, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	return os.Chtimes(p, atime(hdr), hdr.ModTime)
}

func atime(h *tar.Header) time.Time {
	if h.AccessTime.IsZero() {
		return h.ModTime
	}
	return h.AccessTime
}

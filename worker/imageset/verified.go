package imageset

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Verified is an image set whose every file was checked against its manifest: by Verify
// (re-hashing the files on disk) or by Receive (hashing while the files streamed in).
// Restore paths take a Verified, so the type system guarantees the check was not skipped.
type Verified struct {
	dir string
	m   *Manifest
	// stamps identify each file as it was when hashed (Receive only): a later Recheck
	// accepts the set without re-reading it if no file changed since.
	stamps map[string]stamp
}

type stamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// same compares two stamps (times by their instant: one read back from a manifest has
// no monotonic reading).
func (s stamp) same(o stamp) bool {
	return s.size == o.size && s.ino == o.ino && s.mtime.Equal(o.mtime)
}

func stampOf(fi fs.FileInfo) stamp {
	st := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// Dir is the set's directory.
func (v Verified) Dir() string { return v.dir }

// Manifest is the verified manifest.
func (v Verified) Manifest() *Manifest { return v.m }

// Valid tells whether v came from Verify or Receive (the zero Verified is not valid).
func (v Verified) Valid() bool { return v.dir != "" && v.m != nil }

// Moved returns v for the same set after its directory was renamed to dir.
func (v Verified) Moved(dir string) Verified { return Verified{dir: dir, m: v.m, stamps: v.stamps} }

// Recheck returns v again when every file still has the size, mtime and inode it had
// when it was hashed while being received, and there is no extra file: the content
// that was hashed is what is on disk (sets are root-only, 0600/0700). Otherwise, and for
// sets verified by Check, it re-hashes everything with Check.
func Recheck(v Verified) (Verified, error) {
	if !v.Valid() || v.stamps == nil {
		return Check(v.dir)
	}
	n := 0
	err := filepath.WalkDir(ImagesPath(v.dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(ImagesPath(v.dir), p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if want, ok := v.stamps[filepath.ToSlash(rel)]; !ok || want != stampOf(fi) {
			return ErrChecksum
		}
		n++
		return nil
	})
	if err != nil || n != len(v.stamps) {
		return Check(v.dir)
	}
	if _, err := os.Stat(filepath.Join(v.dir, ManifestName)); err != nil {
		return Check(v.dir)
	}
	return v, nil
}

// Check verifies the set at dir and returns it as Verified.
func Check(dir string) (Verified, error) {
	m, err := Verify(dir)
	if err != nil {
		return Verified{}, err
	}
	return Verified{dir: dir, m: m}, nil
}

// String names the set for messages.
func (v Verified) String() string {
	if v.m == nil {
		return v.dir
	}
	return fmt.Sprintf("%s (container %.12s, %d files, %d bytes)", v.dir, v.m.ContainerID, len(v.m.Files), v.m.TotalBytes())
}

// Sealed returns the set just sealed at dir with manifest m as Verified, recording each
// file's (size, mtime, inode) now. Only for the writer that computed m's digests from
// the files' content and knows no one wrote them since (the dumper, right after Seal):
// a later Recheck then costs a stat per file instead of re-reading the set.
func Sealed(dir string, m *Manifest) (Verified, error) {
	stamps := make(map[string]stamp, len(m.Files))
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(ImagesPath(dir), filepath.FromSlash(f.Name)))
		if err != nil {
			return Verified{}, fmt.Errorf("imageset: stamp %s: %w", dir, err)
		}
		if fi.Size() != f.Size {
			return Verified{}, fmt.Errorf("imageset: stamp %s: %w: %s changed size", dir, ErrChecksum, f.Name)
		}
		stamps[f.Name] = stampOf(fi)
	}
	return Verified{dir: dir, m: m, stamps: stamps}, nil
}

// Adopt moves files — image files under from (names relative to it), whose digests were
// computed on this node as they were written, or left empty to be computed later
// (HashLate: the manifest is then marked PagesUnhashed) — into v's images, adds them to
// v's manifest with PagesReceivedBy set to by, and rewrites manifest.json. A name v
// already holds, or a file whose size is not the one given, is refused (ErrChecksum /
// ErrManifest) and v is left as it was but for the files already moved.
func (v Verified) Adopt(from string, files []File, by string) (Verified, error) {
	if !v.Valid() {
		return v, fmt.Errorf("imageset: adopt into an unverified set")
	}
	m := *v.m
	m.Files = append([]File(nil), v.m.Files...)
	stamps := make(map[string]stamp, len(v.stamps)+len(files))
	for k, s := range v.stamps {
		stamps[k] = s
	}
	images := ImagesPath(v.dir)
	for _, f := range files {
		if err := CheckName(f.Name); err != nil {
			return v, err
		}
		if _, ok := v.m.Lookup(f.Name); ok {
			return v, fmt.Errorf("%w: %s came both in the set and from the page server", ErrManifest, f.Name)
		}
		dst := filepath.Join(images, filepath.FromSlash(f.Name))
		if err := os.Rename(filepath.Join(from, filepath.FromSlash(f.Name)), dst); err != nil {
			return v, fmt.Errorf("imageset: adopt %s: %w", f.Name, err)
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return v, fmt.Errorf("imageset: adopt %s: %w", f.Name, err)
		}
		if fi.Size() != f.Size {
			return v, fmt.Errorf("%w: %s has %d bytes, %d were hashed", ErrChecksum, f.Name, fi.Size(), f.Size)
		}
		if err := os.Chmod(dst, FileMode); err != nil {
			return v, err
		}
		stamps[f.Name] = stampOf(fi)
		m.Files = append(m.Files, f)
		if f.SHA256 == "" {
			m.PagesUnhashed = true
			if m.PagesReceived == nil {
				m.PagesReceived = map[string]ReceivedStamp{}
			}
			st := stampOf(fi)
			m.PagesReceived[f.Name] = ReceivedStamp{MtimeNS: st.mtime.UnixNano(), Inode: st.ino}
		}
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	m.PagesReceivedBy = by
	if err := WriteManifest(v.dir, &m); err != nil {
		return v, err
	}
	return Verified{dir: v.dir, m: &m, stamps: stamps}, nil
}

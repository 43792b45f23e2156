package imageset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Unhashed tells whether v still waits for the digests of its received pages
// (Manifest.PagesUnhashed): only the worker process that received it, which holds v
// with the stamps of the files as they arrived, may restore it before HashLate.
func (v Verified) Unhashed() bool { return v.m != nil && v.m.PagesUnhashed }

// HashLate computes the digests a direct transfer's receiver left out (the files with
// no SHA256 in the set's manifest on disk, Manifest.PagesUnhashed) and rewrites the
// manifest with them and without the mark, atomically: until that rename the set on
// disk stays unverified, so an interruption anywhere (ctx ended, a read failed, the
// process died) leaves it refused by Verify, never trusted. A file whose size, mtime
// or inode is no longer what v recorded when it arrived is not hashed: what is on disk
// is then not what was received, and the set stays unverified (ErrChecksum). It
// returns the set as verified, with fresh stamps (a Recheck then costs a stat per
// file); a set whose manifest has nothing to hash any more is returned without stamps
// (a Recheck then re-hashes it in full).
func HashLate(ctx context.Context, v Verified) (Verified, error) {
	if !v.Valid() {
		return v, errors.New("imageset: hash an unverified set")
	}
	m, err := ReadManifest(v.dir)
	if err != nil {
		return v, fmt.Errorf("imageset: hash the received pages of %s: %w", v.dir, err)
	}
	if !m.PagesUnhashed {
		return Verified{dir: v.dir, m: m}, nil // sealed again meanwhile: rechecked in full
	}
	buf := make([]byte, 1<<20)
	for i, f := range m.Files {
		if f.SHA256 != "" {
			continue
		}
		p := filepath.Join(ImagesPath(v.dir), filepath.FromSlash(f.Name))
		sum, err := hashReceived(ctx, p, f, v.stamps, buf)
		if err != nil {
			return v, fmt.Errorf("imageset: hash the received pages of %s (the set stays unverified): %w", v.dir, err)
		}
		m.Files[i].SHA256 = sum
	}
	m.PagesUnhashed, m.PagesReceived = false, nil
	if err := WriteManifest(v.dir, m); err != nil {
		return v, err
	}
	if err := errors.Join(syncPath(filepath.Join(v.dir, ManifestName)), syncPath(v.dir)); err != nil {
		return v, fmt.Errorf("imageset: hash the received pages of %s: %w", v.dir, err)
	}
	return Sealed(v.dir, m)
}

// hashReceived hashes the file p, received as f, if it is still the file stamps
// recorded (when stamps knows it), reading it in chunks and stopping when ctx ends.
func hashReceived(ctx context.Context, p string, f File, stamps map[string]stamp, buf []byte) (string, error) {
	fd, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return "", err
	}
	if want, ok := stamps[f.Name]; (ok && !want.same(stampOf(fi))) || fi.Size() != f.Size {
		return "", fmt.Errorf("%w: %s changed since it was received", ErrChecksum, f.Name)
	}
	h := sha256.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		k, rerr := fd.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", rerr
		}
	}
	if n != f.Size {
		return "", fmt.Errorf("%w: %s has %d bytes, %d were received", ErrChecksum, f.Name, n, f.Size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReceivedStamp is what a received page file was when it arrived (Manifest.PagesReceived):
// its modification time (ns since the epoch) and inode.
type ReceivedStamp struct {
	MtimeNS int64  `json:"mtimeNs"`
	Inode   uint64 `json:"inode"`
}

// ResumeLate returns the set at dir, whose pages a previous worker process received
// but did not hash (Manifest.PagesUnhashed), as HashLate takes it: with the stamps
// its files had when they arrived (Manifest.PagesReceived), so that HashLate hashes
// only files that are still what arrived. A set that records no stamp for one of its
// unhashed files (received by a worker older than PagesReceived) cannot be resumed:
// ErrUnhashed. The set returned is not verified: only HashLate may use it.
func ResumeLate(dir string) (Verified, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return Verified{}, fmt.Errorf("imageset: resume the hash of %s: %w", dir, err)
	}
	if !m.PagesUnhashed {
		return Verified{}, fmt.Errorf("imageset: resume the hash of %s: its pages are hashed already", dir)
	}
	stamps := map[string]stamp{}
	for _, f := range m.Files {
		if f.SHA256 != "" {
			continue
		}
		r, ok := m.PagesReceived[f.Name]
		if !ok {
			return Verified{}, fmt.Errorf("imageset: resume the hash of %s: %s has no stamp of its arrival: %w", dir, f.Name, ErrUnhashed)
		}
		stamps[f.Name] = stamp{size: f.Size, mtime: time.Unix(0, r.MtimeNS), ino: r.Inode}
	}
	return Verified{dir: dir, m: m, stamps: stamps}, nil
}

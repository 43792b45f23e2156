package imageset

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// bufSize is the fixed copy buffer of Send and Receive: memory use does not grow with
// the size of the set.
const bufSize = 1 << 20

// Send writes the set at dir to w as a tar stream: manifest.json first, then every file
// of the manifest under images/, read straight from disk (no staging copy).
func Send(w io.Writer, dir string) error {
	m, err := ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("imageset: send %s: %w", dir, err)
	}
	mb, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return fmt.Errorf("imageset: send %s: %w", dir, err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: int64(FileMode), Size: int64(len(mb))}); err != nil {
		return fmt.Errorf("imageset: send %s: %w", dir, err)
	}
	if _, err := tw.Write(mb); err != nil {
		return fmt.Errorf("imageset: send %s: %w", dir, err)
	}
	buf := make([]byte, bufSize)
	for _, f := range m.Files {
		if err := sendFile(tw, filepath.Join(ImagesPath(dir), filepath.FromSlash(f.Name)), ImagesDir+"/"+f.Name, f.Size, buf); err != nil {
			return fmt.Errorf("imageset: send %s: %w", dir, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("imageset: send %s: %w", dir, err)
	}
	return nil
}

func sendFile(tw *tar.Writer, path, name string, size int64, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(FileMode), Size: size}); err != nil {
		return err
	}
	n, err := io.CopyBuffer(tw, io.LimitReader(f, size), buf)
	if err == nil && n != size {
		err = fmt.Errorf("%s: %w: has %d bytes, manifest says %d", name, ErrChecksum, n, size)
	}
	return err
}

// Receive reads a stream written by Send into the new directory dir, hashing every file
// as it is written, and returns the set as Verified only when every file matches the
// manifest. On any error dir is removed: nothing half-received stays behind.
func Receive(r io.Reader, dir string) (v Verified, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), DirMode); err != nil {
		return v, fmt.Errorf("imageset: receive into %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, DirMode); err != nil {
		return v, fmt.Errorf("imageset: receive into %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("imageset: receive into %s: %w", dir, err), os.RemoveAll(dir))
		}
	}()
	if err := os.Mkdir(ImagesPath(dir), DirMode); err != nil {
		return v, err
	}
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != ManifestName || hdr.Size > 64<<20 {
		return v, fmt.Errorf("%w: stream does not start with %s (%v)", ErrManifest, ManifestName, err)
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return v, err
	}
	m, err := DecodeManifest(bytes.NewReader(mb))
	if err != nil {
		return v, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), mb, FileMode); err != nil {
		return v, err
	}
	bufs := newHashBuffers()
	got := map[string]bool{}
	stamps := map[string]stamp{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v, fmt.Errorf("%w: stream cut after %d of %d files: %w", ErrMissing, len(got), len(m.Files), err)
		}
		name, ok := strings.CutPrefix(hdr.Name, ImagesDir+"/")
		want, listed := m.Lookup(name)
		if !ok || !listed || got[name] || hdr.Typeflag != tar.TypeReg {
			return v, fmt.Errorf("%w: unexpected entry %q in stream", ErrMissing, hdr.Name)
		}
		st, err := receiveFile(tr, filepath.Join(ImagesPath(dir), filepath.FromSlash(name)), want, bufs)
		if err != nil {
			return v, err
		}
		got[name] = true
		stamps[name] = st
	}
	if len(got) != len(m.Files) {
		return v, fmt.Errorf("%w: stream ended after %d of %d files", ErrMissing, len(got), len(m.Files))
	}
	return Verified{dir: dir, m: m, stamps: stamps}, nil
}

func receiveFile(r io.Reader, path string, want File, bufs *hashBuffers) (stamp, error) {
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		return stamp{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return stamp{}, err
	}
	h := sha256.New()
	n, err := copyHashing(f, r, h, bufs, NewWriteback(f))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return stamp{}, fmt.Errorf("%w: stream cut inside %s after %d of %d bytes", ErrMissing, want.Name, n, want.Size)
	}
	if err != nil {
		return stamp{}, fmt.Errorf("write %s: %w (is the disk full?)", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != want.Size || sum != want.SHA256 {
		return stamp{}, fmt.Errorf("%w: %s arrived with %d bytes sha256 %.12s, manifest says %d bytes %.12s",
			ErrChecksum, want.Name, n, sum, want.Size, want.SHA256)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stampOf(fi), nil
}

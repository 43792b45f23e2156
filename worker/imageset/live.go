package imageset

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// The live format carries a set while its files are still being written (a dump
// streaming to the target node while CRIU writes the images), so the sizes and digests
// are not known up front as a tar header would need them:
//
//	"swarmckpt-live-set 1\n"
//	frames: op (1 byte) | name length (uint16 BE) | name | data length (uint32 BE) | data
//	  'a' append data to images/<name> (created, 0600, on its first frame)
//	  'r' restart images/<name>: what was received for it is discarded (its digest too)
//	  'm' data is manifest.json; it ends the stream
//
// The receiver hashes every byte it writes and accepts the set only when the closing
// manifest lists exactly the files received, with their sizes and sha256: the digests
// in the manifest are the sender's, computed from the very bytes it sent.
const (
	// LiveContentType is the HTTP content type of a live stream.
	LiveContentType = "application/x-swarmckpt-live-set"
	liveMagic       = "swarmckpt-live-set 1\n"
	opAppend        = 'a'
	opRestart       = 'r'
	opManifest      = 'm'
	// maxFrame bounds one append frame; longer data is split.
	maxFrame = 4 << 20
	// maxManifest bounds the manifest frame (a manifest lists a few dozen files).
	maxManifest = 64 << 20
	// maxLiveFiles bounds how many files a live stream may create.
	maxLiveFiles = 100000
)

// LiveWriter writes a live stream to w. Its methods may be called from several
// goroutines, never concurrently on the same file. The first error sticks: later calls
// return it without writing.
type LiveWriter struct {
	mu      sync.Mutex
	w       io.Writer
	started bool
	err     error
	hdr     []byte
}

// NewLiveWriter returns a LiveWriter on w (the magic line is written with the first frame).
func NewLiveWriter(w io.Writer) *LiveWriter { return &LiveWriter{w: w} }

// Append sends p as the next bytes of images/name (an empty p creates the file).
func (l *LiveWriter) Append(name string, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		n := min(len(p), maxFrame)
		if err := l.frame(opAppend, name, p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// Restart discards what was sent for images/name so far; its content follows anew.
func (l *LiveWriter) Restart(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frame(opRestart, name, nil)
}

// Finish sends the manifest (the bytes of manifest.json), which ends the stream.
func (l *LiveWriter) Finish(manifest []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(manifest) > maxManifest {
		l.err = fmt.Errorf("%w: manifest of %d bytes is too large", ErrManifest, len(manifest))
		return l.err
	}
	return l.frame(opManifest, "", manifest)
}

// Err returns the first error a write met.
func (l *LiveWriter) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *LiveWriter) frame(op byte, name string, data []byte) error {
	if l.err != nil {
		return l.err
	}
	if op != opManifest {
		if err := CheckName(name); err != nil {
			l.err = fmt.Errorf("imageset: live stream: %w", err)
			return l.err
		}
	}
	if len(name) > 0xffff {
		l.err = fmt.Errorf("imageset: live stream: name of %d bytes too long", len(name))
		return l.err
	}
	h := l.hdr[:0]
	if !l.started {
		h = append(h, liveMagic...)
	}
	h = append(h, op)
	h = binary.BigEndian.AppendUint16(h, uint16(len(name)))
	h = append(h, name...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(data)))
	l.hdr = h
	if _, err := l.w.Write(h); err != nil {
		l.err = fmt.Errorf("imageset: live stream: %w", err)
		return l.err
	}
	l.started = true
	if len(data) > 0 {
		if _, err := l.w.Write(data); err != nil {
			l.err = fmt.Errorf("imageset: live stream: %w", err)
			return l.err
		}
	}
	return nil
}

// liveFile is a file being received.
type liveFile struct {
	path string
	h    hash.Hash
	n    int64
	wb   Writeback // its file is the one open while frames of this file arrive
}

// ReceiveLive reads a live stream into the new directory dir, hashing every file as it
// is written, and returns the set as Verified only when the closing manifest lists
// exactly the received files with matching sizes and sha256. On any error (bad or cut
// stream, mismatch, disk full) dir is removed: nothing half-received stays behind.
// Memory use is bounded by three fixed buffers, whatever the size of the set.
func ReceiveLive(r io.Reader, dir string) (v Verified, err error) {
	return ReceiveLiveAdopting(r, dir, Verified{})
}

// ReceiveLiveAdopting is ReceiveLive that takes a file the closing manifest lists but
// the stream did not send from pre, a set verified on this node (a pre-copy's
// pre-dumps, received while the container ran), when pre's manifest lists it with the
// same name, size and sha256: the file moves (a rename) into dir. pre's files are
// the ones it verified on arrival as long as they keep their size (Recheck the set
// first). A zero pre adopts nothing. On failure the files moved stay in dir, which is
// removed: pre is then incomplete and must be dropped.
func ReceiveLiveAdopting(r io.Reader, dir string, pre Verified) (v Verified, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), DirMode); err != nil {
		return v, fmt.Errorf("imageset: receive into %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, DirMode); err != nil {
		return v, fmt.Errorf("imageset: receive into %s: %w", dir, err)
	}
	var cur *os.File // the file last written, kept open while frames for it follow
	defer func() {
		if cur != nil {
			_ = cur.Close()
		}
		if err != nil {
			err = errors.Join(fmt.Errorf("imageset: receive into %s: %w", dir, err), os.RemoveAll(dir))
		}
	}()
	images := ImagesPath(dir)
	if err := os.Mkdir(images, DirMode); err != nil {
		return v, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(liveMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != liveMagic {
		return v, fmt.Errorf("%w: not a live set stream (%v)", ErrManifest, err)
	}
	files := map[string]*liveFile{}
	var curName string
	bufs := newHashBuffers()
	var hdr [4]byte
	for {
		op, err := br.ReadByte()
		if err != nil {
			return v, fmt.Errorf("%w: stream cut after %d files, before the manifest: %w", ErrMissing, len(files), err)
		}
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return v, fmt.Errorf("%w: stream cut in a frame header: %w", ErrMissing, err)
		}
		nameb := make([]byte, binary.BigEndian.Uint16(hdr[:2]))
		if _, err := io.ReadFull(br, nameb); err != nil {
			return v, fmt.Errorf("%w: stream cut in a frame header: %w", ErrMissing, err)
		}
		if _, err := io.ReadFull(br, hdr[:4]); err != nil {
			return v, fmt.Errorf("%w: stream cut in a frame header: %w", ErrMissing, err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		name := string(nameb)
		switch op {
		case opManifest:
			if name != "" || size > maxManifest {
				return v, fmt.Errorf("%w: bad manifest frame (%d bytes)", ErrManifest, size)
			}
			if cur != nil {
				if err := cur.Close(); err != nil {
					cur = nil
					return v, fmt.Errorf("write %s: %w (is the disk full?)", curName, err)
				}
				cur = nil
			}
			mb := make([]byte, size)
			if _, err := io.ReadFull(br, mb); err != nil {
				return v, fmt.Errorf("%w: stream cut inside the manifest: %w", ErrMissing, err)
			}
			if n, _ := br.Read(hdr[:1]); n > 0 {
				return v, fmt.Errorf("%w: data after the manifest", ErrMissing)
			}
			return finishLive(dir, mb, files, pre)
		case opAppend, opRestart:
		default:
			return v, fmt.Errorf("%w: unknown frame %q", ErrManifest, op)
		}
		if err := CheckName(name); err != nil {
			return v, fmt.Errorf("%w: %w", ErrMissing, err)
		}
		if op == opRestart && size != 0 {
			return v, fmt.Errorf("%w: restart frame with data", ErrManifest)
		}
		f := files[name]
		if f == nil {
			if len(files) >= maxLiveFiles {
				return v, fmt.Errorf("%w: more than %d files", ErrMissing, maxLiveFiles)
			}
			f = &liveFile{path: filepath.Join(images, filepath.FromSlash(name)), h: sha256.New()}
			if err := os.MkdirAll(filepath.Dir(f.path), DirMode); err != nil {
				return v, err
			}
		}
		flags := os.O_WRONLY | os.O_APPEND
		switch {
		case files[name] == nil:
			flags |= os.O_CREATE | os.O_EXCL
			files[name] = f
		case op == opRestart:
			flags |= os.O_TRUNC
			f.h.Reset()
			f.n = 0
		}
		if cur == nil || curName != name || op == opRestart {
			if cur != nil {
				if err := cur.Close(); err != nil {
					cur = nil
					return v, fmt.Errorf("write %s: %w (is the disk full?)", curName, err)
				}
			}
			cur = nil
			if cur, err = os.OpenFile(f.path, flags, FileMode); err != nil {
				cur = nil
				return v, err
			}
			curName = name
			f.wb.f = cur
		}
		n, err := copyHashing(cur, io.LimitReader(br, size), f.h, bufs, &f.wb)
		f.n += n
		if err != nil {
			return v, fmt.Errorf("write %s: %w (is the disk full?)", f.path, err)
		}
		if n != size {
			return v, fmt.Errorf("%w: stream cut inside %s", ErrMissing, name)
		}
	}
}

// finishLive checks what was received against the manifest mb and seals the set.
func finishLive(dir string, mb []byte, files map[string]*liveFile, pre Verified) (Verified, error) {
	m, err := DecodeManifest(bytes.NewReader(mb))
	if err != nil {
		return Verified{}, err
	}
	stamps := make(map[string]stamp, len(files))
	adopted := 0
	for _, want := range m.Files {
		f := files[want.Name]
		if f == nil {
			st, err := adopt(pre, want, dir)
			if err != nil {
				return Verified{}, fmt.Errorf("%w: %s is in the manifest but was not sent (%v)", ErrMissing, want.Name, err)
			}
			stamps[want.Name] = st
			adopted++
			continue
		}
		if sum := hex.EncodeToString(f.h.Sum(nil)); f.n != want.Size || sum != want.SHA256 {
			return Verified{}, fmt.Errorf("%w: %s arrived with %d bytes sha256 %.12s, manifest says %d bytes %.12s",
				ErrChecksum, want.Name, f.n, sum, want.Size, want.SHA256)
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return Verified{}, err
		}
		if fi.Size() != f.n {
			return Verified{}, fmt.Errorf("%w: %s has %d bytes on disk, %d were received", ErrChecksum, want.Name, fi.Size(), f.n)
		}
		stamps[want.Name] = stampOf(fi)
	}
	if len(files)+adopted != len(m.Files) {
		var extra []string
		for name := range files {
			if _, ok := m.Lookup(name); !ok {
				extra = append(extra, name)
			}
		}
		sort.Strings(extra)
		return Verified{}, fmt.Errorf("%w: %v sent but not in the manifest", ErrMissing, extra)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), mb, FileMode); err != nil {
		return Verified{}, err
	}
	return Verified{dir: dir, m: m, stamps: stamps}, nil
}

// adopt moves file want of the verified set pre into dir's images, if pre holds it with
// the same size and sha256 (and it still has that size), and returns its stamp.
func adopt(pre Verified, want File, dir string) (stamp, error) {
	if !pre.Valid() {
		return stamp{}, errors.New("no earlier set holds it")
	}
	have, ok := pre.m.Lookup(want.Name)
	if !ok || have.Size != want.Size || have.SHA256 != want.SHA256 {
		return stamp{}, fmt.Errorf("the pre-sent set %s does not hold it with that content", pre.dir)
	}
	from := filepath.Join(ImagesPath(pre.dir), filepath.FromSlash(want.Name))
	fi, err := os.Stat(from)
	if err != nil || fi.Size() != want.Size {
		return stamp{}, fmt.Errorf("the pre-sent set %s changed: %v", pre.dir, err)
	}
	to := filepath.Join(ImagesPath(dir), filepath.FromSlash(want.Name))
	if err := os.MkdirAll(filepath.Dir(to), DirMode); err != nil {
		return stamp{}, err
	}
	if err := os.Rename(from, to); err != nil {
		return stamp{}, err
	}
	fi, err = os.Stat(to)
	if err != nil {
		return stamp{}, err
	}
	return stampOf(fi), nil
}

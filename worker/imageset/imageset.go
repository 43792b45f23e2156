package imageset

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Layout names inside a set directory.
const (
	ManifestName = "manifest.json"
	ImagesDir    = "images"
	// DirMode and FileMode are the permissions of every directory and file of a set.
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
	// Version is the manifest format version; bump on incompatible changes.
	Version = 1
)

// Sentinel errors.
var (
	// ErrChecksum: a file's content does not match its manifest sha256 or size.
	ErrChecksum = errors.New("imageset: checksum mismatch")
	// ErrMissing: a file listed in the manifest is absent, or an unlisted one is present.
	ErrMissing = errors.New("imageset: file set differs from manifest")
	// ErrManifest: the manifest is absent, unreadable or of an unknown version.
	ErrManifest = errors.New("imageset: bad manifest")
	// ErrUnhashed: the set's memory pages, received from a direct transfer, have not
	// been hashed yet (Manifest.PagesUnhashed), so nothing can verify them.
	ErrUnhashed = errors.New("imageset: the memory pages of this set were received by a direct transfer and have not been hashed yet (the receiving worker hashes them after the restore; if it ended before that, the set cannot be verified: restore from another snapshot)")
)

// File is one image file of the set.
type File struct {
	// Name is the path relative to images/, slash separated.
	Name string `json:"name"`
	// Size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex digest of the content.
	SHA256 string `json:"sha256"`
}

// Manifest describes one image set.
type Manifest struct {
	Version int `json:"version"`
	// ContainerID is the ID of the dumped container on its source node.
	ContainerID string `json:"containerID"`
	// Node is the name of the source node.
	Node string `json:"node,omitempty"`
	// Spec recreates the container.
	Spec container.Spec `json:"spec"`
	// LeaveRunning tells whether the source kept running after the dump.
	LeaveRunning bool `json:"leaveRunning"`
	// CRIUVersion and Kernel describe the source so a target can refuse mismatches.
	CRIUVersion string `json:"criuVersion"`
	Kernel      string `json:"kernel"`
	// Created is when the dump finished; DumpSeconds how long it took.
	Created     time.Time `json:"created"`
	DumpSeconds float64   `json:"dumpSeconds"`
	// DumpCPUSeconds is the CPU time runc and CRIU used for the dump (user+system).
	DumpCPUSeconds float64 `json:"dumpCPUSeconds,omitempty"`
	// LazyPages is the HOST:PORT of the source's page server for a post-copy dump
	// (memory pages are not in the set; they are fetched on demand at restore).
	LazyPages string `json:"lazyPages,omitempty"`
	// PagesReceivedBy names the node that received the memory pages straight from the
	// dumping CRIU (its page server wrote them; Worker.DumpInto) and computed their
	// digests: the source never wrote them to its disk.
	PagesReceivedBy string `json:"pagesReceivedBy,omitempty"`
	// PagesUnhashed: the memory page files PagesReceivedBy received have no digest yet
	// (their SHA256 is empty). A direct transfer's receiver may hash them after the
	// restore that follows it, off the critical path (HashLate), and then rewrites this
	// manifest with the digests and without this mark. Until then the set is not
	// verified: Verify refuses it (ErrUnhashed), and so does every restore but the one
	// the receiving worker process itself trusts as received. A set whose worker ended
	// before its hash finished keeps the mark: it is never trusted silently.
	PagesUnhashed bool `json:"pagesUnhashed,omitempty"`
	// PagesReceived records, for each page file still without a digest, the (mtime,
	// inode) it had when it arrived (its size is in Files): a worker that starts after
	// the one that received the set ended before hashing it resumes the hash from
	// these (ResumeLate) instead of leaving the set unverified; a file whose stamp
	// changed since is not hashed (the set stays unverified). Cleared with
	// PagesUnhashed.
	PagesReceived map[string]ReceivedStamp `json:"pagesReceived,omitempty"`
	// Rootfs says what the set carries of the container's writable layer (the tar
	// images/rootfs-diff.tar, package rootfsdiff); nil in sets written before it
	// existed and in sets of fakes.
	Rootfs *Rootfs `json:"rootfs,omitempty"`
	// Volumes are the local named volumes whose content the set carries (a dump asked
	// to carry them, `--carry-volumes`): each in images/VolumeFile(name), a file of the
	// set like the others (hashed, sealed, transferred, verified). A restore on another
	// node recreates each volume with that content before the container is restored.
	Volumes []Volume `json:"volumes,omitempty"`
	// PreDumps is the number of pre-dumps under images/pre/ (migrate --copy pre-copy,
	// parents.go) whose pages the final dump's images refer to: a restore links the
	// chain (LinkParents) first. 0: a dump without pre-dumps.
	PreDumps int `json:"preDumps,omitempty"`
	// Files lists every file under images/, sorted by name.
	Files []File `json:"files"`
}

// Rootfs describes the writable layer carried in a set.
type Rootfs struct {
	// Carried: images/rootfs-diff.tar holds the layer; else Reason says why not.
	Carried bool   `json:"carried"`
	Reason  string `json:"reason,omitempty"`
	// Entries, Whiteouts (deleted paths) and Bytes (file content) of the layer, and
	// the seconds packing it took (while the container was frozen or stopped).
	Entries   int     `json:"entries,omitempty"`
	Whiteouts int     `json:"whiteouts,omitempty"`
	Bytes     int64   `json:"bytes,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	// Skipped are paths left out (sockets, names starting with .wh.).
	Skipped []string `json:"skipped,omitempty"`
}

// Volume is a local named volume carried in a set.
type Volume struct {
	// Name is the volume's name; Target where the container mounts it.
	Name   string `json:"name"`
	Target string `json:"target"`
	// Entries and Bytes (file content) packed, and the seconds packing took (while the
	// container was frozen or stopped).
	Entries int     `json:"entries"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds,omitempty"`
	// Mode (permission bits, setgid/sticky included), UID and GID of the volume's root
	// directory, which the tar's entries (relative to it) do not carry: a restore sets
	// them on the recreated volume (CRIU refuses a working directory whose mode changed).
	Mode uint32 `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// VolumeFile is the name, under images/, of the tar carrying volume name.
func VolumeFile(name string) string { return "volume-" + name + ".tar" }

// CarriesVolume tells whether the set carries the content of volume name.
func (m *Manifest) CarriesVolume(name string) bool {
	for _, v := range m.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// TotalBytes is the sum of all file sizes.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Lookup returns the manifest entry for name.
func (m *Manifest) Lookup(name string) (File, bool) {
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Name >= name })
	if i < len(m.Files) && m.Files[i].Name == name {
		return m.Files[i], true
	}
	return File{}, false
}

// SameFiles tells whether o is a manifest of the same container listing the same files
// with the same sizes and sha256 (a copy of this set).
func (m *Manifest) SameFiles(o *Manifest) bool {
	if m.ContainerID != o.ContainerID || len(m.Files) != len(o.Files) {
		return false
	}
	for _, f := range o.Files {
		g, ok := m.Lookup(f.Name)
		if !ok || g.Size != f.Size || !strings.EqualFold(g.SHA256, f.SHA256) {
			return false
		}
	}
	return true
}

// ImagesPath returns <set>/images.
func ImagesPath(set string) string { return filepath.Join(set, ImagesDir) }

// HashFile returns the size and sha256 of one file, reading it with a fixed buffer.
func HashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Seal hashes every file under <set>/images, fixes permissions (dirs 0700, files 0600),
// fills m.Files and writes the manifest atomically. Symlinks and special files are refused.
func Seal(set string, m *Manifest) error { return SealKnown(set, m, nil) }

// SealKnown is Seal reusing digests computed while the files were written (known, by
// name relative to images/): a known entry is used only if its size is the file's size
// now; every other file is hashed. A known entry without a digest (dump.FollowSizes)
// stays without one, and m is then marked PagesUnhashed (HashLate computes them).
func SealKnown(set string, m *Manifest, known map[string]File) error {
	m.Version = Version
	m.Files = m.Files[:0]
	m.PagesUnhashed = false
	root := ImagesPath(set)
	if err := os.Chmod(set, DirMode); err != nil {
		return fmt.Errorf("imageset: seal %s: %w", set, err)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			return os.Chmod(p, DirMode)
		case !d.Type().IsRegular():
			return fmt.Errorf("imageset: %s is not a regular file", p)
		}
		if err := os.Chmod(p, FileMode); err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if k, ok := known[name]; ok {
			if fi, err := d.Info(); err == nil && fi.Size() == k.Size {
				m.Files = append(m.Files, File{Name: name, Size: k.Size, SHA256: k.SHA256})
				m.PagesUnhashed = m.PagesUnhashed || k.SHA256 == ""
				return nil
			}
		}
		size, sum, err := HashFile(p)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, File{Name: name, Size: size, SHA256: sum})
		return nil
	})
	if err != nil {
		return fmt.Errorf("imageset: seal %s: %w", set, err)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	return WriteManifest(set, m)
}

// WriteManifest writes <set>/manifest.json atomically with mode 0600.
func WriteManifest(set string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("imageset: encode manifest: %w", err)
	}
	tmp := filepath.Join(set, ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), FileMode); err != nil {
		return fmt.Errorf("imageset: write manifest in %s: %w", set, err)
	}
	if err := os.Rename(tmp, filepath.Join(set, ManifestName)); err != nil {
		return fmt.Errorf("imageset: write manifest in %s: %w", set, err)
	}
	return nil
}

// ReadManifest reads and decodes <set>/manifest.json.
func ReadManifest(set string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(set, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	defer f.Close()
	return DecodeManifest(bufio.NewReader(f))
}

// DecodeManifest decodes and sanity-checks a manifest.
func DecodeManifest(r io.Reader) (*Manifest, error) {
	var m Manifest
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrManifest, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrManifest, m.Version, Version)
	}
	for i, f := range m.Files {
		if err := CheckName(f.Name); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrManifest, err)
		}
		unhashed := f.SHA256 == "" && m.PagesUnhashed // Verify refuses the set (ErrUnhashed)
		if (len(f.SHA256) != 64 && !unhashed) || f.Size < 0 {
			return nil, fmt.Errorf("%w: file %q has no valid sha256/size", ErrManifest, f.Name)
		}
		if i > 0 && m.Files[i-1].Name >= f.Name {
			return nil, fmt.Errorf("%w: files not sorted or duplicated at %q", ErrManifest, f.Name)
		}
	}
	return &m, nil
}

// CheckName refuses file names that could escape the images directory.
func CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("bad file name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("bad file name %q", name)
		}
	}
	return nil
}

// Verify re-reads every file of the set and compares it with the manifest: sizes,
// sha256, no missing and no extra files. It returns the manifest when all match.
func Verify(set string) (*Manifest, error) {
	m, err := ReadManifest(set)
	if err != nil {
		return nil, fmt.Errorf("imageset: verify %s: %w", set, err)
	}
	if m.PagesUnhashed {
		return nil, fmt.Errorf("imageset: verify %s (container %.12s): %w", set, m.ContainerID, ErrUnhashed)
	}
	root := ImagesPath(set)
	seen := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		want, ok := m.Lookup(filepath.ToSlash(rel))
		if !ok {
			return fmt.Errorf("%w: %s is not in the manifest", ErrMissing, rel)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrChecksum, rel)
		}
		size, sum, err := HashFile(p)
		if err != nil {
			return err
		}
		if size != want.Size || sum != want.SHA256 {
			return fmt.Errorf("%w: %s has %d bytes sha256 %.12s, manifest says %d bytes %.12s",
				ErrChecksum, rel, size, sum, want.Size, want.SHA256)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(m.Files) {
		err = fmt.Errorf("%w: %d of %d files present", ErrMissing, seen, len(m.Files))
	}
	if err != nil {
		return nil, fmt.Errorf("imageset: verify %s (container %.12s): %w", set, m.ContainerID, err)
	}
	return m, nil
}

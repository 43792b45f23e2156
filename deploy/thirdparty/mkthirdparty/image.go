package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// ErrSpec is returned for an image description that cannot be written.
var ErrSpec = errors.New("mkthirdparty: bad image spec")

// epoch is the timestamp of every file and of the image: fixed for reproducible output.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Kind is the type of a layer entry.
type Kind int

// Entry kinds.
const (
	File Kind = iota
	Dir
	Symlink
)

// Entry is one file system object of the image's layer.
type Entry struct {
	Path    string // absolute, clean
	Kind    Kind
	Mode    int64  // permission bits
	UID     int    // owner
	GID     int    // group
	Content []byte // File only
	Target  string // Symlink only
}

// Config is the part of the image config a container starts from.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string // user name or uid[:gid]; empty = root
	WorkingDir string
	Expose     []string // PORT/tcp or PORT/udp
	Labels     map[string]string
}

// Spec describes a one-layer image.
type Spec struct {
	Tag     string // repository:tag, e.g. swarmckpt-thirdparty/redis:deb
	Entries []Entry
	Config  Config
	Arch    string // default amd64
}

// Result names what was written.
type Result struct {
	ImageID string // sha256:<hex of config>, what `docker images --no-trunc` shows
	DiffID  string // sha256:<hex of the layer tar>
	Files   int    // entries in the layer, implied parent directories included
}

type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Created      time.Time       `json:"created"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history"`
}

type containerConfig struct {
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Env          []string            `json:"Env"`
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	WorkingDir   string              `json:"WorkingDir"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

type manifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func (s *Spec) validate() error {
	name, tag, ok := strings.Cut(s.Tag, ":")
	if !ok || name == "" || tag == "" || strings.ToLower(name) != name {
		return fmt.Errorf("%w: tag %q, want lowercase repository:tag", ErrSpec, s.Tag)
	}
	if len(s.Config.Entrypoint) == 0 {
		return fmt.Errorf("%w: %s has no entrypoint", ErrSpec, s.Tag)
	}
	for _, p := range s.Config.Expose {
		if !strings.HasSuffix(p, "/tcp") && !strings.HasSuffix(p, "/udp") {
			return fmt.Errorf("%w: expose %q, want PORT/tcp or PORT/udp", ErrSpec, p)
		}
	}
	for _, e := range s.Entries {
		if !path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || e.Path == "/" {
			return fmt.Errorf("%w: path %q, want a clean absolute path", ErrSpec, e.Path)
		}
	}
	return nil
}

// layerEntries returns the entries sorted by path with every missing parent directory
// added (root-owned, 0755). The same path twice is allowed only if both are identical.
func layerEntries(in []Entry) ([]Entry, error) {
	byPath := map[string]Entry{}
	for _, e := range in {
		if old, ok := byPath[e.Path]; ok {
			if old.Kind != e.Kind || old.Mode != e.Mode || old.UID != e.UID || old.GID != e.GID ||
				!bytes.Equal(old.Content, e.Content) || old.Target != e.Target {
				return nil, fmt.Errorf("%w: %s is given twice with different content or attributes", ErrSpec, e.Path)
			}
			continue
		}
		byPath[e.Path] = e
	}
	for p, e := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if old, ok := byPath[d]; ok {
				if old.Kind != Dir {
					return nil, fmt.Errorf("%w: %s is not a directory but %s is inside it", ErrSpec, d, e.Path)
				}
				continue
			}
			byPath[d] = Entry{Path: d, Kind: Dir, Mode: 0o755}
		}
	}
	out := make([]Entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Write writes the image archive of s to w.
func Write(w io.Writer, s Spec) (Result, error) {
	if err := s.validate(); err != nil {
		return Result{}, err
	}
	if s.Arch == "" {
		s.Arch = "amd64"
	}
	entries, err := layerEntries(s.Entries)
	if err != nil {
		return Result{}, err
	}
	layer, err := layerTar(entries)
	if err != nil {
		return Result{}, err
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])
	env := s.Config.Env
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	wd := s.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	cfg := imageConfig{
		Architecture: s.Arch, OS: "linux", Created: epoch,
		Config: containerConfig{Entrypoint: s.Config.Entrypoint, Cmd: s.Config.Cmd, Env: env,
			User: s.Config.User, Labels: s.Config.Labels, WorkingDir: wd},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{"sha256:" + layerHex}},
		History: []history{{Created: epoch, CreatedBy: "mkthirdparty: " + strings.Join(s.Config.Entrypoint, " ")}},
	}
	if len(s.Config.Expose) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Config.Expose {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("mkthirdparty: encoding config: %w", err)
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerName := layerHex + "/layer.tar"
	manifest, err := json.Marshal([]manifestEntry{{Config: cfgName, RepoTags: []string{s.Tag}, Layers: []string{layerName}}})
	if err != nil {
		return Result{}, fmt.Errorf("mkthirdparty: encoding manifest: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(header(layerHex+"/", tar.TypeDir, 0o755, 0)); err != nil {
		return Result{}, fmt.Errorf("mkthirdparty: writing archive: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{layerHex + "/VERSION", []byte("1.0")},
		{layerName, layer},
		{cfgName, cfgJSON},
		{"manifest.json", manifest},
	} {
		if err := tw.WriteHeader(header(f.name, tar.TypeReg, 0o644, int64(len(f.data)))); err != nil {
			return Result{}, fmt.Errorf("mkthirdparty: writing archive: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return Result{}, fmt.Errorf("mkthirdparty: writing archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return Result{}, fmt.Errorf("mkthirdparty: writing archive: %w", err)
	}
	return Result{ImageID: "sha256:" + strings.TrimSuffix(cfgName, ".json"), DiffID: "sha256:" + layerHex, Files: len(entries)}, nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// layerTar writes the sorted entries as one layer.
func layerTar(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		name := strings.TrimPrefix(e.Path, "/")
		var h *tar.Header
		switch e.Kind {
		case Dir:
			h = header(name+"/", tar.TypeDir, e.Mode, 0)
		case Symlink:
			h = header(name, tar.TypeSymlink, 0o777, 0)
			h.Linkname = e.Target
		default:
			h = header(name, tar.TypeReg, e.Mode, int64(len(e.Content)))
		}
		h.Uid, h.Gid = e.UID, e.GID
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("mkthirdparty: writing layer entry %s: %w", e.Path, err)
		}
		if e.Kind == File {
			if _, err := tw.Write(e.Content); err != nil {
				return nil, fmt.Errorf("mkthirdparty: writing layer entry %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("mkthirdparty: writing layer: %w", err)
	}
	return buf.Bytes(), nil
}

func header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: epoch,
		Format: tar.FormatPAX}
}

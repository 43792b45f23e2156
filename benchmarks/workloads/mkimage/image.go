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
	"strings"
	"time"
)

// ErrSpec is returned for an image description that cannot be written.
var ErrSpec = errors.New("mkimage: bad image spec")

// epoch is the timestamp of every file and of the image: fixed for reproducible output.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Spec describes a one-file image.
type Spec struct {
	Tag        string            // repository:tag, e.g. swarmckpt/counter:dev
	File       string            // absolute path of the binary inside the image, e.g. /counter
	Content    []byte            // the binary
	Entrypoint []string          // default [File]
	Expose     []string          // e.g. 8080/tcp
	Labels     map[string]string // image labels
	Arch       string            // default amd64
}

// Result names what was written.
type Result struct {
	ImageID string // sha256:<hex of config>, what `docker images --no-trunc` shows
	DiffID  string // sha256:<hex of the layer tar>
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
	Env          []string            `json:"Env"`
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
	if !path.IsAbs(s.File) || path.Clean(s.File) != s.File || s.File == "/" {
		return fmt.Errorf("%w: file %q, want a clean absolute path like /counter", ErrSpec, s.File)
	}
	if len(s.Content) == 0 {
		return fmt.Errorf("%w: empty binary", ErrSpec)
	}
	for _, p := range s.Expose {
		if !strings.HasSuffix(p, "/tcp") && !strings.HasSuffix(p, "/udp") {
			return fmt.Errorf("%w: expose %q, want PORT/tcp or PORT/udp", ErrSpec, p)
		}
	}
	return nil
}

// Write writes the image archive of s to w.
func Write(w io.Writer, s Spec) (Result, error) {
	if err := s.validate(); err != nil {
		return Result{}, err
	}
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = []string{s.File}
	}
	if s.Arch == "" {
		s.Arch = "amd64"
	}
	layer, err := layerTar(s.File, s.Content)
	if err != nil {
		return Result{}, err
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])
	cfg := imageConfig{
		Architecture: s.Arch, OS: "linux", Created: epoch,
		Config: containerConfig{Entrypoint: s.Entrypoint, Env: []string{"PATH=/"},
			Labels: s.Labels, WorkingDir: "/"},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{"sha256:" + layerHex}},
		History: []history{{Created: epoch, CreatedBy: "mkimage: " + s.File}},
	}
	if len(s.Expose) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Expose {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("mkimage: encoding config: %w", err)
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerName := layerHex + "/layer.tar"
	manifest, err := json.Marshal([]manifestEntry{{Config: cfgName, RepoTags: []string{s.Tag}, Layers: []string{layerName}}})
	if err != nil {
		return Result{}, fmt.Errorf("mkimage: encoding manifest: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(header(layerHex+"/", tar.TypeDir, 0o755, 0)); err != nil {
		return Result{}, fmt.Errorf("mkimage: writing archive: %w", err)
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
			return Result{}, fmt.Errorf("mkimage: writing archive: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return Result{}, fmt.Errorf("mkimage: writing archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return Result{}, fmt.Errorf("mkimage: writing archive: %w", err)
	}
	return Result{ImageID: "sha256:" + strings.TrimSuffix(cfgName, ".json"), DiffID: "sha256:" + layerHex}, nil
}

// layerTar is the image's only layer: the binary, owned by root, mode 0755.
func layerTar(file string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(header(strings.TrimPrefix(file, "/"), tar.TypeReg, 0o755, int64(len(content)))); err != nil {
		return nil, fmt.Errorf("mkimage: writing layer: %w", err)
	}
	if _, err := tw.Write(content); err != nil {
		return nil, fmt.Errorf("mkimage: writing layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("mkimage: writing layer: %w", err)
	}
	return buf.Bytes(), nil
}

func header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: epoch,
		Uid: 0, Gid: 0, Format: tar.FormatUSTAR}
}

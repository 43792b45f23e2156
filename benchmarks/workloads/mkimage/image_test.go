package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func spec() Spec {
	return Spec{Tag: "swarmckpt/counter:dev", File: "/counter", Content: []byte("\x7fELF fake binary"),
		Expose: []string{"8080/tcp"}}
}

func readTar(t *testing.T, b []byte) map[string]*struct {
	h    *tar.Header
	data []byte
} {
	t.Helper()
	out := map[string]*struct {
		h    *tar.Header
		data []byte
	}{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("archive is not a valid tar: %v", err)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = &struct {
			h    *tar.Header
			data []byte
		}{h, data}
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	ra, err := Write(&a, spec())
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := Write(&b, spec())
	if !bytes.Equal(a.Bytes(), b.Bytes()) || ra != rb {
		t.Fatal("two writes of the same spec differ")
	}
	s := spec()
	s.Content = []byte("\x7fELF other binary")
	var c bytes.Buffer
	rc, _ := Write(&c, s)
	if rc.ImageID == ra.ImageID || rc.DiffID == ra.DiffID {
		t.Fatal("a different binary gave the same image id or diff id")
	}
}

func TestArchiveIsLoadable(t *testing.T) {
	var buf bytes.Buffer
	res, err := Write(&buf, spec())
	if err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())
	m, ok := files["manifest.json"]
	if !ok {
		t.Fatal("no manifest.json")
	}
	var manifest []manifestEntry
	if err := json.Unmarshal(m.data, &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest %s: %v", m.data, err)
	}
	me := manifest[0]
	if len(me.RepoTags) != 1 || me.RepoTags[0] != "swarmckpt/counter:dev" || len(me.Layers) != 1 {
		t.Fatalf("manifest entry %+v", me)
	}
	cfgFile, ok := files[me.Config]
	if !ok {
		t.Fatalf("config %s named in manifest is missing", me.Config)
	}
	sum := sha256.Sum256(cfgFile.data)
	if "sha256:"+hex.EncodeToString(sum[:]) != res.ImageID || me.Config != hex.EncodeToString(sum[:])+".json" {
		t.Fatalf("config file name / image id do not match the config's sha256")
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgFile.data, &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/counter" || cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Fatalf("config %+v", cfg)
	}
	if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Fatal("8080/tcp not exposed")
	}
	layer, ok := files[me.Layers[0]]
	if !ok {
		t.Fatalf("layer %s missing", me.Layers[0])
	}
	lsum := sha256.Sum256(layer.data)
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(lsum[:]) {
		t.Fatalf("diff_ids %v do not match the layer's sha256 %x", cfg.RootFS.DiffIDs, lsum)
	}
	inLayer := readTar(t, layer.data)
	bin, ok := inLayer["counter"]
	if !ok || len(inLayer) != 1 {
		t.Fatalf("layer holds %d files, want only counter", len(inLayer))
	}
	if string(bin.data) != string(spec().Content) || bin.h.Mode != 0o755 || bin.h.Uid != 0 {
		t.Fatalf("binary in layer: mode %o uid %d content %q", bin.h.Mode, bin.h.Uid, bin.data)
	}
}

func TestWriteRejectsBadSpec(t *testing.T) {
	for name, mut := range map[string]func(*Spec){
		"no tag":        func(s *Spec) { s.Tag = "swarmckpt/counter" },
		"upper case":    func(s *Spec) { s.Tag = "Swarmckpt/counter:dev" },
		"relative file": func(s *Spec) { s.File = "counter" },
		"empty binary":  func(s *Spec) { s.Content = nil },
		"bad port":      func(s *Spec) { s.Expose = []string{"8080"} },
	} {
		s := spec()
		mut(&s)
		if _, err := Write(io.Discard, s); !errors.Is(err, ErrSpec) {
			t.Errorf("%s: err %v, want ErrSpec", name, err)
		}
	}
}

package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const lddRedis = `	linux-vdso.so.1 (0x00007f653706b000)
	libatomic.so.1 => /lib/x86_64-linux-gnu/libatomic.so.1 (0x00007f6537050000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f653601e000)
	libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f6536f6a000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f653601e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f653706d000)
`

func TestParseLdd(t *testing.T) {
	got, err := parseLdd(lddRedis)
	if err != nil {
		t.Fatal(err)
	}
	want := "/lib/x86_64-linux-gnu/libatomic.so.1 /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libm.so.6 /lib64/ld-linux-x86-64.so.2"
	if strings.Join(got, " ") != want {
		t.Fatalf("parseLdd = %v, want %s (vdso skipped, duplicates once, loader kept)", got, want)
	}
	if libs, err := parseLdd("\tnot a dynamic executable\n"); err != nil || len(libs) != 0 {
		t.Fatalf("static binary: %v %v", libs, err)
	}
	_, err = parseLdd("\tlibfoo.so.1 => not found\n")
	if !errors.Is(err, ErrLdd) || !strings.Contains(err.Error(), "libfoo.so.1") {
		t.Fatalf("missing library: err %v, want ErrLdd naming libfoo.so.1", err)
	}
}

func TestLayerEntriesAddsParentsAndRejectsConflicts(t *testing.T) {
	es, err := layerEntries([]Entry{
		{Path: "/usr/bin/x", Kind: File, Mode: 0o755, Content: []byte("a")},
		{Path: "/usr/bin/x", Kind: File, Mode: 0o755, Content: []byte("a")}, // same: once
		{Path: "/data", Kind: Dir, Mode: 0o750, UID: 999, GID: 999},
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range es {
		paths = append(paths, e.Path)
	}
	if strings.Join(paths, " ") != "/data /usr /usr/bin /usr/bin/x" {
		t.Fatalf("entries %v", paths)
	}
	if es[0].UID != 999 || es[0].Mode != 0o750 {
		t.Fatalf("/data lost its owner or mode: %+v", es[0])
	}
	if _, err := layerEntries([]Entry{{Path: "/a", Kind: File, Content: []byte("1")}, {Path: "/a", Kind: File, Content: []byte("2")}}); !errors.Is(err, ErrSpec) {
		t.Fatalf("same path, different content: err %v", err)
	}
	if _, err := layerEntries([]Entry{{Path: "/a", Kind: File, Content: []byte("1")}, {Path: "/a/b", Kind: File}}); !errors.Is(err, ErrSpec) {
		t.Fatalf("file used as a directory: err %v", err)
	}
}

func TestEtcFilesAndOwners(t *testing.T) {
	u, err := parseUser("redis:999:999:/data")
	if err != nil {
		t.Fatal(err)
	}
	es, err := etcFiles([]User{u})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(es[0].Content); got != "root:x:0:0:root:/root:/bin/sh\nredis:x:999:999::/data:/usr/sbin/nologin\n" {
		t.Fatalf("passwd %q", got)
	}
	if got := string(es[1].Content); got != "root:x:0:\nredis:x:999:\n" {
		t.Fatalf("group %q", got)
	}
	if _, err := etcFiles([]User{{Name: "root"}}); !errors.Is(err, ErrSpec) {
		t.Fatalf("a second root: err %v", err)
	}
	if uid, gid, err := ownerOf("redis", []User{u}); err != nil || uid != 999 || gid != 999 {
		t.Fatalf("ownerOf redis = %d %d %v", uid, gid, err)
	}
	if uid, gid, err := ownerOf("5:6", nil); err != nil || uid != 5 || gid != 6 {
		t.Fatalf("ownerOf 5:6 = %d %d %v", uid, gid, err)
	}
	if _, _, err := ownerOf("nobody", nil); !errors.Is(err, ErrSpec) {
		t.Fatalf("unknown owner: err %v", err)
	}
	for _, bad := range []string{"redis", "redis:x:1", ":1:1"} {
		if _, err := parseUser(bad); !errors.Is(err, ErrSpec) {
			t.Errorf("parseUser(%q): err %v", bad, err)
		}
	}
}

func spec() Spec {
	return Spec{Tag: "swarmckpt-thirdparty/x:deb",
		Entries: []Entry{{Path: "/usr/bin/x", Kind: File, Mode: 0o755, Content: []byte("\x7fELF x")},
			{Path: "/bin/sh", Kind: Symlink, Target: "busybox"}},
		Config: Config{Entrypoint: []string{"/usr/bin/x"}, Cmd: []string{"--flag"}, User: "redis", Expose: []string{"6379/tcp"}}}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not a valid tar: %v", err)
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeSymlink {
			data = []byte("-> " + h.Linkname)
		}
		out[h.Name] = data
	}
}

func TestWriteIsDeterministicAndLoadable(t *testing.T) {
	var a, b bytes.Buffer
	ra, err := Write(&a, spec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, spec()); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two writes of one spec differ (err %v)", err)
	}
	files := untar(t, a.Bytes())
	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 || manifest[0].RepoTags[0] != "swarmckpt-thirdparty/x:deb" {
		t.Fatalf("manifest %s: %v", files["manifest.json"], err)
	}
	cfgRaw := files[manifest[0].Config]
	sum := sha256.Sum256(cfgRaw)
	if "sha256:"+hex.EncodeToString(sum[:]) != ra.ImageID {
		t.Fatal("image id is not the config's sha256")
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "redis" || strings.Join(cfg.Config.Cmd, " ") != "--flag" || cfg.Config.Entrypoint[0] != "/usr/bin/x" ||
		!strings.HasPrefix(cfg.Config.Env[0], "PATH=") {
		t.Fatalf("config %+v", cfg.Config)
	}
	layer := files[manifest[0].Layers[0]]
	lsum := sha256.Sum256(layer)
	if cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(lsum[:]) {
		t.Fatal("diff id is not the layer's sha256")
	}
	in := untar(t, layer)
	if string(in["usr/bin/x"]) != "\x7fELF x" || string(in["bin/sh"]) != "-> busybox" {
		t.Fatalf("layer holds %v", in)
	}
	if _, ok := in["usr/bin/"]; !ok {
		t.Fatal("parent directory usr/bin/ not in the layer")
	}
	bad := spec()
	bad.Config.Entrypoint = nil
	if _, err := Write(io.Discard, bad); !errors.Is(err, ErrSpec) {
		t.Fatalf("no entrypoint: err %v", err)
	}
}

// TestHostFileCopiesLibraries packs a real dynamically linked program of this machine.
func TestHostFileCopiesLibraries(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("SKIP: no ldd on this machine")
	}
	prog := "/bin/ls"
	if _, err := os.Stat(prog); err != nil {
		t.Skip("SKIP: no /bin/ls to pack")
	}
	es, err := hostFile(t.Context(), prog, "/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	var hasLibc, hasLoader bool
	for _, e := range es {
		hasLibc = hasLibc || strings.HasSuffix(e.Path, "/libc.so.6")
		hasLoader = hasLoader || strings.Contains(e.Path, "ld-linux")
		if e.Kind != File || len(e.Content) == 0 {
			t.Fatalf("%s: not a regular file with content", e.Path)
		}
	}
	if es[0].Path != "/bin/ls" || !hasLibc || !hasLoader {
		t.Fatalf("hostFile(/bin/ls) gave %d entries, want the program, libc and the loader", len(es))
	}
}

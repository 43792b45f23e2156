package ociwrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	inv := Parse(strings.Fields("--root /r --log /l.json --log-format json --systemd-cgroup create --bundle /b --pid-file /p --console-socket /s --no-pivot " + id))
	if inv.Root != "/r" || inv.Log != "/l.json" || inv.Command != "create" || inv.Bundle != "/b" ||
		inv.PidFile != "/p" || inv.ConsoleSocket != "/s" || inv.ID != id || !slices.Equal(inv.Extra, []string{"--no-pivot"}) {
		t.Fatalf("%+v", inv)
	}
	if !slices.Equal(inv.Global, strings.Fields("--root /r --log /l.json --log-format json --systemd-cgroup")) {
		t.Fatalf("global = %q", inv.Global)
	}
	inv = Parse([]string{"--root=/r", "create", "-b", "/b", "--pid-file=/p", id})
	if inv.Root != "/r" || inv.Bundle != "/b" || inv.PidFile != "/p" || inv.ID != id {
		t.Fatalf("= forms: %+v", inv)
	}
	inv = Parse([]string{"--root", "/r", "start", id})
	if inv.Command != "start" || inv.ID != id {
		t.Fatalf("start: %+v", inv)
	}
	if inv = Parse([]string{"--version"}); inv.Command != "" {
		t.Fatalf("--version: %+v", inv)
	}
}

// node is a fake Docker node: data-root with a container dir, a bundle, runc root, and a
// fake runc script that logs its arguments and fails when $dataRoot/fail exists.
type node struct {
	dataRoot, bundle, root, runc, argsLog string
}

func newNode(t *testing.T, labels map[string]string) node {
	t.Helper()
	d := t.TempDir()
	n := node{dataRoot: filepath.Join(d, "data"), bundle: filepath.Join(d, "bundle"), root: filepath.Join(d, "runc-root"),
		runc: filepath.Join(d, "runc"), argsLog: filepath.Join(d, "runc.args")}
	cdir := filepath.Join(n.dataRoot, "containers", id)
	for _, p := range []string{cdir, n.bundle, n.root} {
		must(t, os.MkdirAll(p, 0o700))
	}
	cfg := map[string]any{"mounts": []map[string]string{
		{"destination": "/etc/resolv.conf", "source": filepath.Join(cdir, "resolv.conf")},
		{"destination": "/etc/hostname", "source": filepath.Join(cdir, "hostname")},
	}}
	writeJSON(t, filepath.Join(n.bundle, "config.json"), cfg)
	writeJSON(t, filepath.Join(cdir, "config.v2.json"), map[string]any{"Config": map[string]any{"Labels": labels}})
	script := `#!/bin/sh
echo "$@" >> ` + n.argsLog + `
[ -e ` + filepath.Join(n.dataRoot, "fail") + ` ] && { echo "criu failed" >&2; exit 1; }
for a in "$@"; do last=$a; done
[ "$1" = "--root" ] && mkdir -p "$2/$last"
exit 0
`
	must(t, os.WriteFile(n.runc, []byte(script), 0o700))
	return n
}

func (n node) placeDir(t *testing.T, name string) string {
	dir := filepath.Join(n.dataRoot, AreaDir, RestoreDir, name)
	must(t, os.MkdirAll(filepath.Join(dir, "images"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, ReadyFile), []byte("{}"), 0o600))
	return dir
}

// run runs the wrapper; exec is recorded instead of replacing the test process.
func (n node) run(t *testing.T, args ...string) (code int, execed []string, stderr string) {
	var errb bytes.Buffer
	w := &Wrapper{Runc: n.runc, Stdin: strings.NewReader(""), Stdout: &errb, Stderr: &errb, Now: time.Now,
		Exec: func(path string, argv []string, env []string) error {
			execed = append([]string{path}, argv[1:]...)
			return errors.New("exec recorded by test")
		}}
	code = w.Main(args)
	return code, execed, errb.String()
}

func (n node) create() []string {
	return []string{"--root", n.root, "--log", filepath.Join(n.bundle, "log.json"), "--log-format", "json",
		"create", "--bundle", n.bundle, "--pid-file", filepath.Join(n.bundle, "init.pid"), id}
}

func TestPassThroughUnchanged(t *testing.T) {
	n := newNode(t, nil)
	for _, args := range [][]string{
		{"--root", n.root, "delete", id},
		{"--root", n.root, "start", id},
		{"--version"},
		{"--root", n.root, "create", "--bundle", "/nonexistent", id},
		n.create(), // no restore area at all
	} {
		code, execed, _ := n.run(t, args...)
		if !slices.Equal(execed, append([]string{n.runc}, args...)) {
			t.Fatalf("args %q: exec'd %q, want runc with the same arguments", args, execed)
		}
		if code != 127 { // the recorded exec "failed", so Main reports 127
			t.Fatalf("code %d", code)
		}
	}
	// A restore area with a directory for another container, and one not ready yet.
	n.placeDir(t, ForContainer("other"))
	must(t, os.MkdirAll(filepath.Join(n.dataRoot, AreaDir, RestoreDir, ForContainer(id)), 0o700))
	if _, execed, _ := n.run(t, n.create()...); len(execed) == 0 || execed[len(execed)-1] != id || slices.Contains(execed, "restore") {
		t.Fatalf("create with no ready marker for this ID: exec'd %q, want plain runc create", execed)
	}
}

func TestRestoreByContainerID(t *testing.T) {
	n := newNode(t, nil)
	dir := n.placeDir(t, ForContainer(id))
	code, execed, stderr := n.run(t, n.create()...)
	if code != 0 || execed != nil {
		t.Fatalf("create: code %d exec %q stderr %s", code, execed, stderr)
	}
	got, _ := os.ReadFile(n.argsLog)
	want := "--root " + n.root + " --log " + filepath.Join(n.bundle, "log.json") + " --log-format json restore --detach --image-path " +
		dir + ".restoring-" + id + "/images --work-path " + dir + ".restoring-" + id + "/work --bundle " + n.bundle +
		" --pid-file " + filepath.Join(n.bundle, "init.pid") + " " + id + "\n"
	if string(got) != want {
		t.Fatalf("runc called with\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore dir not consumed: %v", err)
	}
	done, _ := os.ReadDir(filepath.Join(n.dataRoot, AreaDir, RestoredDir))
	if len(done) != 1 || !strings.HasPrefix(done[0].Name(), ForContainer(id)+".") {
		t.Fatalf("restored area holds %v", done)
	}
	// start is answered without runc; a second start goes to runc.
	if code, execed, _ := n.run(t, "--root", n.root, "start", id); code != 0 || execed != nil {
		t.Fatalf("start after restore: code %d exec %q", code, execed)
	}
	if _, execed, _ := n.run(t, "--root", n.root, "start", id); len(execed) == 0 {
		t.Fatal("second start was not passed to runc")
	}
	// A later create of the same container starts fresh: the marker was consumed.
	if _, execed, _ := n.run(t, n.create()...); !slices.Contains(execed, "create") {
		t.Fatalf("create after consumption: exec %q", execed)
	}
}

func TestRestoreBySwarmSlot(t *testing.T) {
	n := newNode(t, map[string]string{"com.docker.swarm.service.name": "st_web", "com.docker.swarm.task.name": "st_web.3.abcdef"})
	n.placeDir(t, ForTask("st_web", 2)) // other slot: ignored
	code, execed, _ := n.run(t, n.create()...)
	if code != 127 || !slices.Contains(execed, "create") {
		t.Fatalf("other slot: code %d exec %q", code, execed)
	}
	n.placeDir(t, ForTask("st_web", 3))
	if code, execed, stderr := n.run(t, n.create()...); code != 0 || execed != nil {
		t.Fatalf("slot 3: code %d exec %q %s", code, execed, stderr)
	}
}

func TestFailedRestoreIsAnErrorNeverAFreshStart(t *testing.T) {
	n := newNode(t, nil)
	dir := n.placeDir(t, ForContainer(id))
	must(t, os.WriteFile(filepath.Join(n.dataRoot, "fail"), nil, 0o600))
	code, execed, stderr := n.run(t, n.create()...)
	if code == 0 || execed != nil {
		t.Fatalf("failed restore: code %d exec %q (must not fall back to runc create)", code, execed)
	}
	if !strings.Contains(stderr, "runc restore") || !strings.Contains(stderr, id) {
		t.Fatalf("error message %q does not name the container and the cause", stderr)
	}
	msg, err := os.ReadFile(filepath.Join(dir, ErrorFile))
	if err != nil || !strings.Contains(string(msg), "runc restore") {
		t.Fatalf("restore dir must stay with %s: %v %q", ErrorFile, err, msg)
	}
	logb, _ := os.ReadFile(filepath.Join(n.bundle, "log.json"))
	if !strings.Contains(string(logb), `"level":"error"`) {
		t.Fatalf("runc log lacks the error line for containerd: %s", logb)
	}
	if _, err := os.Stat(filepath.Join(n.root, id, RestoredFlag)); err == nil {
		t.Fatal("failed restore marked the container as restored")
	}
}

func TestBrokenMarkerFailsClosed(t *testing.T) {
	n := newNode(t, nil)
	n.placeDir(t, ForTask("x", 1))
	// config.v2.json unreadable while an svc- dir exists: refuse, don't guess.
	must(t, os.WriteFile(filepath.Join(n.dataRoot, "containers", id, "config.v2.json"), []byte("{"), 0o600))
	if code, execed, _ := n.run(t, n.create()...); code == 0 || execed != nil {
		t.Fatalf("code %d exec %q", code, execed)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, p string, v any) {
	b, err := json.Marshal(v)
	must(t, err)
	must(t, os.WriteFile(p, b, 0o600))
}

// TestAddPrestartHookKeepsEverythingElse: the lock hook goes first among the prestart
// hooks (before libnetwork's), every other field of config.json is kept.
func TestAddPrestartHookKeepsEverythingElse(t *testing.T) {
	b := t.TempDir()
	orig := `{"ociVersion":"1.0.2","process":{"args":["/x"]},"linux":{"namespaces":[{"type":"network"}]},` +
		`"hooks":{"prestart":[{"path":"/proc/1/exe","args":["libnetwork-setkey","id"]}],"poststop":[{"path":"/p"}]}}`
	must(t, os.WriteFile(filepath.Join(b, "config.json"), []byte(orig), 0o600))
	must(t, AddPrestartHook(b, "/w", []string{"/w", HookCommand, "/dir/network-lock"}))
	raw, err := os.ReadFile(filepath.Join(b, "config.json"))
	must(t, err)
	var cfg struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args []string `json:"args"`
		} `json:"process"`
		Hooks map[string][]struct {
			Path string   `json:"path"`
			Args []string `json:"args"`
		} `json:"hooks"`
	}
	must(t, json.Unmarshal(raw, &cfg))
	pre := cfg.Hooks["prestart"]
	if len(pre) != 2 || pre[0].Path != "/w" || !slices.Equal(pre[0].Args, []string{"/w", HookCommand, "/dir/network-lock"}) ||
		pre[1].Args[0] != "libnetwork-setkey" {
		t.Fatalf("prestart hooks %+v", pre)
	}
	if cfg.OCIVersion != "1.0.2" || cfg.Process.Args[0] != "/x" || len(cfg.Hooks["poststop"]) != 1 {
		t.Fatalf("other fields lost: %s", raw)
	}
	if fi, err := os.Stat(filepath.Join(b, "config.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode changed: %v %v", fi.Mode(), err)
	}
	path, found, err := netNamespace(b)
	if err != nil || !found || path != "" {
		t.Fatalf("netNamespace = %q %v %v, want a new namespace (no path)", path, found, err)
	}
}

// TestSysctlHookGoesLastAndAnnotationsAreKept: the sysctl hook is appended after every
// other prestart hook, and an annotation is added next to the existing ones.
func TestSysctlHookGoesLastAndAnnotationsAreKept(t *testing.T) {
	b := t.TempDir()
	orig := `{"ociVersion":"1.0.2","annotations":{"a":"1"},` +
		`"hooks":{"prestart":[{"path":"/proc/1/exe","args":["libnetwork-setkey","id"]}]}}`
	must(t, os.WriteFile(filepath.Join(b, "config.json"), []byte(orig), 0o600))
	must(t, addPrestartHook(b, "/w", []string{"/w", SysctlHookCommand}, false))
	must(t, AddAnnotation(b, "org.criu.config", "/x.conf"))
	raw, err := os.ReadFile(filepath.Join(b, "config.json"))
	must(t, err)
	var cfg struct {
		Annotations map[string]string `json:"annotations"`
		Hooks       map[string][]struct {
			Path string   `json:"path"`
			Args []string `json:"args"`
		} `json:"hooks"`
	}
	must(t, json.Unmarshal(raw, &cfg))
	pre := cfg.Hooks["prestart"]
	if len(pre) != 2 || pre[0].Args[0] != "libnetwork-setkey" || pre[1].Path != "/w" ||
		!slices.Equal(pre[1].Args, []string{"/w", SysctlHookCommand}) {
		t.Fatalf("prestart hooks %+v", pre)
	}
	if cfg.Annotations["a"] != "1" || cfg.Annotations["org.criu.config"] != "/x.conf" {
		t.Fatalf("annotations %v", cfg.Annotations)
	}
	if err := AddAnnotation(t.TempDir(), "k", "v"); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("AddAnnotation without config.json: %v, want ErrBadBundle", err)
	}
}

// TestLockedRestoreAddsTheHookAndUnlockedDoesNot: a restore directory with LockFile
// makes the wrapper add its hook before runc restore; without it the bundle is untouched;
// the hook refuses a state without a pid (no silent unlocked restore).
func TestLockedRestoreAddsTheHookAndUnlockedDoesNot(t *testing.T) {
	for _, locked := range []bool{false, true} {
		n := newNode(t, nil)
		cfgPath := filepath.Join(n.bundle, "config.json")
		var cfg map[string]any
		raw, _ := os.ReadFile(cfgPath)
		must(t, json.Unmarshal(raw, &cfg))
		cfg["linux"] = map[string]any{"namespaces": []map[string]string{{"type": "mount"}, {"type": "network"}}}
		writeJSON(t, cfgPath, cfg)
		dir := n.placeDir(t, ForContainer(id))
		if locked {
			must(t, os.WriteFile(filepath.Join(dir, LockFile), []byte("add table inet x\n"), 0o600))
		}
		before, _ := os.ReadFile(cfgPath)
		if code, _, stderr := n.run(t, n.create()...); code != 0 {
			t.Fatalf("locked=%v: exit %d: %s", locked, code, stderr)
		}
		after, _ := os.ReadFile(cfgPath)
		if got := strings.Contains(string(after), HookCommand); got != locked {
			t.Fatalf("locked=%v: hook in config.json = %v:\n%s", locked, got, after)
		}
		if !locked && !bytes.Equal(before, after) {
			t.Fatalf("unlocked restore changed config.json")
		}
	}
	// Host network (no network namespace entry): never locked, and said so.
	n := newNode(t, nil)
	dir := n.placeDir(t, ForContainer(id))
	must(t, os.WriteFile(filepath.Join(dir, LockFile), []byte("add table inet x\n"), 0o600))
	if code, _, stderr := n.run(t, n.create()...); code != 0 {
		t.Fatalf("host network: exit %d: %s", code, stderr)
	}
	if raw, _ := os.ReadFile(filepath.Join(n.bundle, "config.json")); strings.Contains(string(raw), HookCommand) {
		t.Fatalf("hook added for a container in the host's network namespace")
	}
	if l, _ := os.ReadFile(filepath.Join(n.bundle, "log.json")); !strings.Contains(string(l), "host's network: not locked") {
		t.Fatalf("no warning in the runtime log: %s", l)
	}
	if err := Hook("/nonexistent", strings.NewReader(`{"ociVersion":"1.0.2","id":"x"}`)); !errors.Is(err, ErrLock) {
		t.Fatalf("hook without pid: %v, want ErrLock", err)
	}
}

// TestExpiredPlacementIsRetiredAndTheTaskStartsNormally: a placement whose restore was
// abandoned (past its expires time) must not bring a much later task back from an old
// checkpoint; one not yet expired restores; a malformed expires file fails the create.
func TestExpiredPlacementIsRetiredAndTheTaskStartsNormally(t *testing.T) {
	n := newNode(t, map[string]string{"com.docker.swarm.service.name": "st_web", "com.docker.swarm.task.name": "st_web.3.abcdef"})
	dir := n.placeDir(t, ForTask("st_web", 3))
	must(t, os.WriteFile(filepath.Join(dir, ExpiresFile), []byte(time.Now().Add(-time.Second).Format(time.RFC3339Nano)), 0o600))
	code, execed, _ := n.run(t, n.create()...)
	if code != 127 || !slices.Contains(execed, "create") {
		t.Fatalf("expired placement: code %d exec %q, want plain runc create", code, execed)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired placement not retired: %v", err)
	}
	done, _ := os.ReadDir(filepath.Join(n.dataRoot, AreaDir, RestoredDir))
	if len(done) != 1 || !strings.Contains(done[0].Name(), ".expired.") {
		t.Fatalf("restored area holds %v, want the retired placement", done)
	}
	logb, _ := os.ReadFile(filepath.Join(n.bundle, "log.json"))
	if !strings.Contains(string(logb), "expired") {
		t.Fatalf("runtime log does not say the placement expired: %s", logb)
	}
	dir = n.placeDir(t, ForTask("st_web", 3))
	must(t, os.WriteFile(filepath.Join(dir, ExpiresFile), []byte("soon"), 0o600))
	if code, execed, _ := n.run(t, n.create()...); code == 0 || execed != nil {
		t.Fatalf("malformed expires: code %d exec %q, want a failed create", code, execed)
	}
	must(t, os.WriteFile(filepath.Join(dir, ExpiresFile), []byte(time.Now().Add(time.Minute).Format(time.RFC3339Nano)), 0o600))
	if code, execed, stderr := n.run(t, n.create()...); code != 0 || execed != nil {
		t.Fatalf("placement not expired: code %d exec %q %s, want a restore", code, execed, stderr)
	}
}

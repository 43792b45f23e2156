package ociwrap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeHelper installs a fake `swarmckpt` (SWARMCKPT_BIN) that appends "helper ARGS" to
// the node's runc log (so the order of helper and runc calls shows) and fails when
// $dataRoot/helper-fail exists.
func fakeHelper(t *testing.T, n node) {
	t.Helper()
	p := filepath.Join(filepath.Dir(n.runc), "swarmckpt")
	script := `#!/bin/sh
echo "helper $@" >> ` + n.argsLog + `
[ -e ` + filepath.Join(n.dataRoot, "helper-fail") + ` ] && { echo "rewrite: bad CRIU image" >&2; exit 1; }
echo "rewrote 4 address(es) in 1 file(s)"
exit 0
`
	must(t, os.WriteFile(p, []byte(script), 0o700))
	t.Setenv("SWARMCKPT_BIN", p)
}

func calls(t *testing.T, n node) []string {
	b, _ := os.ReadFile(n.argsLog)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestAddressMapAppliedBeforeRestore(t *testing.T) {
	n := newNode(t, map[string]string{"com.docker.swarm.service.name": "st_web", "com.docker.swarm.task.name": "st_web.1.abc"})
	fakeHelper(t, n)
	dir := n.placeDir(t, ForTask("st_web", 1))
	must(t, os.WriteFile(filepath.Join(dir, AddressMapFile), []byte(`{"version":1,"addresses":{"10.0.0.1":"10.0.0.9"}}`), 0o600))
	if code, execed, stderr := n.run(t, n.create()...); code != 0 || execed != nil {
		t.Fatalf("create: code %d exec %q %s", code, execed, stderr)
	}
	c := calls(t, n)
	claimed := dir + ".restoring-" + id
	if len(c) != 2 || c[0] != "helper readdress "+claimed+" "+filepath.Join(claimed, AddressMapFile) || !strings.Contains(c[1], " restore ") {
		t.Fatalf("calls %q, want the rewrite helper on the claimed dir, then runc restore", c)
	}
	done, _ := filepath.Glob(filepath.Join(n.dataRoot, AreaDir, RestoredDir, "*", AddressMapFile+".applied"))
	if len(done) != 1 {
		t.Fatalf("consumed dir should keep the map as %s.applied: %v", AddressMapFile, done)
	}
	logb, _ := os.ReadFile(filepath.Join(n.bundle, "log.json"))
	if !strings.Contains(string(logb), "rewritten for the new addresses") {
		t.Fatalf("runtime log does not record the rewrite: %s", logb)
	}
}

func TestWrapperWaitsForTheAddressMap(t *testing.T) {
	n := newNode(t, nil)
	fakeHelper(t, n)
	dir := n.placeDir(t, ForContainer(id))
	must(t, os.WriteFile(filepath.Join(dir, AddressWaitFile), []byte(time.Now().Add(20*time.Second).Format(time.RFC3339Nano)), 0o600))
	claimed := dir + ".restoring-" + id
	placed := make(chan time.Time, 1)
	go func() {
		// The coordinator's part: once the wrapper claimed the dir, place the map.
		for !exists(claimed) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(150 * time.Millisecond)
		tmp := filepath.Join(claimed, "map.tmp")
		_ = os.WriteFile(tmp, []byte(`{}`), 0o600)
		placed <- time.Now()
		_ = os.Rename(tmp, filepath.Join(claimed, AddressMapFile))
	}()
	code, execed, stderr := n.run(t, n.create()...)
	end := time.Now()
	if code != 0 || execed != nil {
		t.Fatalf("create: code %d exec %q %s", code, execed, stderr)
	}
	at := <-placed
	if end.Before(at) {
		t.Fatal("the wrapper returned before the map was placed")
	}
	if c := calls(t, n); len(c) != 2 || !strings.HasPrefix(c[0], "helper readdress ") {
		t.Fatalf("calls %q, want the helper then runc", c)
	}
}

func TestNoAddressMapByTheDeadlineClosesConnections(t *testing.T) {
	n := newNode(t, nil)
	fakeHelper(t, n)
	dir := n.placeDir(t, ForContainer(id))
	must(t, os.WriteFile(filepath.Join(dir, AddressWaitFile), []byte(time.Now().Add(100*time.Millisecond).Format(time.RFC3339Nano)), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, TCPCloseFile), []byte(`[{"local":"10.0.0.1:40000","remote":"10.0.0.2:7000"}]`), 0o600))
	if code, execed, stderr := n.run(t, n.create()...); code != 0 || execed != nil {
		t.Fatalf("create: code %d exec %q %s", code, execed, stderr)
	}
	if c := calls(t, n); len(c) != 1 || !strings.Contains(c[0], " restore ") {
		t.Fatalf("calls %q, want runc restore only (no map, no helper)", c)
	}
	var cfg struct {
		Annotations map[string]string `json:"annotations"`
	}
	b, _ := os.ReadFile(filepath.Join(n.bundle, "config.json"))
	must(t, json.Unmarshal(b, &cfg))
	conf := cfg.Annotations["org.criu.config"]
	if conf == "" {
		t.Fatalf("bundle has no org.criu.config annotation: %s", b)
	}
	got, err := os.ReadFile(filepath.Join(n.dataRoot, AreaDir, RestoredDir, mustGlobOne(t, filepath.Join(n.dataRoot, AreaDir, RestoredDir, "*")), "work", CRIUConfigFile))
	if err != nil || !strings.Contains(string(got), "tcp-close\n") {
		t.Fatalf("CRIU config %s: %q %v, want tcp-close", conf, got, err)
	}
	logb, _ := os.ReadFile(filepath.Join(n.bundle, "log.json"))
	if !strings.Contains(string(logb), "tcp-close") || !strings.Contains(string(logb), "10.0.0.2:7000") || !strings.Contains(string(logb), "no address map") {
		t.Fatalf("runtime log does not report the closed connections: %s", logb)
	}
}

func mustGlobOne(t *testing.T, pat string) string {
	t.Helper()
	m, _ := filepath.Glob(pat)
	if len(m) != 1 {
		t.Fatalf("%s matches %v, want one", pat, m)
	}
	return filepath.Base(m[0])
}

func TestFailedRewriteFailsTheRestore(t *testing.T) {
	n := newNode(t, nil)
	fakeHelper(t, n)
	dir := n.placeDir(t, ForContainer(id))
	must(t, os.WriteFile(filepath.Join(dir, AddressMapFile), []byte(`{}`), 0o600))
	must(t, os.WriteFile(filepath.Join(n.dataRoot, "helper-fail"), nil, 0o600))
	code, execed, stderr := n.run(t, n.create()...)
	if code == 0 || execed != nil {
		t.Fatalf("failed rewrite: code %d exec %q (must fail, never start fresh)", code, execed)
	}
	if c := calls(t, n); len(c) != 1 || !strings.HasPrefix(c[0], "helper ") {
		t.Fatalf("calls %q: runc must not run after a failed rewrite", c)
	}
	msg, err := os.ReadFile(filepath.Join(dir, ErrorFile))
	if err != nil || !strings.Contains(string(msg), "bad CRIU image") || !strings.Contains(stderr, "new addresses") {
		t.Fatalf("dir must be back with the helper's reason in %s: %v %q; stderr %q", ErrorFile, err, msg, stderr)
	}
	if !exists(filepath.Join(dir, AddressMapFile)) {
		t.Fatal("the map must stay for a retry when the rewrite failed")
	}
}

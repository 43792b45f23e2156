package rewrite_test

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/criuimg"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

var (
	a1 = netip.MustParseAddr("10.251.7.1")
	b1 = netip.MustParseAddr("10.251.7.2")
	a2 = netip.MustParseAddr("10.251.7.101")
	b2 = netip.MustParseAddr("10.251.7.102")
)

// echoPair starts a server in b (listening on :7000, a dual-stack socket: its accepted
// connection records IPv4-mapped IPv6 addresses) and a client in a dialing b1, and
// waits for 20 echoes.
func echoPair(t *testing.T, dir string) *lab {
	l := newLab(t, dir, a1, b1)
	l.start(l.b, "server", "server :7000")
	l.start(l.a, "client", "client "+b1.String()+":7000")
	l.waitFor(20*time.Second, "20 echoes", func() bool { return lastOK(l.log("client")) >= 20 })
	return l
}

func hashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			_, sum, err := imageset.HashFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = sum
		}
	}
	return out
}

func find(conns []rewrite.Conn, port uint16) (rewrite.Conn, bool) {
	for _, c := range conns {
		if c.Local.Port() == port || c.Remote.Port() == port {
			return c, true
		}
	}
	return rewrite.Conn{}, false
}

// TestImagesOfARealDump: a real CRIU dump of both ends of a TCP connection between two
// network namespaces is rewritten with {a1->a2, b1->b2}: both ends then agree on the
// new 4-tuple, the dual-stack server's IPv4-mapped addresses stay mapped, its [::]
// listener is untouched, files other than files.img are byte-identical, and modes stay
// 0600. A map of unrelated addresses changes nothing.
func TestImagesOfARealDump(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := echoPair(t, dir)
	cDir := l.dump(l.a, l.pids[1], "client", true)
	sDir := l.dump(l.b, l.pids[0], "server", true)

	unrelated, _ := rewrite.NewMap(map[netip.Addr]netip.Addr{netip.MustParseAddr("10.251.8.1"): netip.MustParseAddr("10.251.8.2")})
	before := hashes(t, cDir)
	if r, err := rewrite.Images(cDir, unrelated); err != nil || len(r.Files) != 0 || len(r.Changes) != 0 || r.Sockets == 0 {
		t.Fatalf("unrelated map: report %+v err %v; want sockets examined and nothing changed", r, err)
	}
	if after := hashes(t, cDir); !equal(before, after) {
		t.Fatalf("a map that changes nothing modified files: %v -> %v", before, after)
	}

	m, err := rewrite.NewMap(map[netip.Addr]netip.Addr{a1: a2, b1: b2})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rewrite.Plan(cDir, m)
	if err != nil {
		t.Fatal(err)
	}
	if got := hashes(t, cDir); !equal(before, got) {
		t.Fatal("Plan wrote files")
	}
	sBefore := hashes(t, sDir)
	var reports []rewrite.Report
	for _, d := range []string{cDir, sDir} {
		r, err := rewrite.Images(d, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Changes {
			t.Logf("%s: %s", filepath.Base(d), c)
		}
		reports = append(reports, r)
	}
	if len(plan.Changes) != len(reports[0].Changes) {
		t.Fatalf("Plan announced %d changes, Images made %d", len(plan.Changes), len(reports[0].Changes))
	}
	for i, d := range []string{cDir, sDir} {
		if len(reports[i].Files) != 1 || reports[i].Files[0] != "files.img" {
			t.Fatalf("%s: rewritten files %v, want [files.img]", d, reports[i].Files)
		}
		fi, err := os.Stat(filepath.Join(d, "files.img"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s/files.img mode %v (%v), want 0600", d, fi.Mode(), err)
		}
		if _, err := os.Stat(filepath.Join(d, "files.img.rewrite")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary file left behind: %v", err)
		}
	}
	for name, sum := range hashes(t, cDir) {
		if name != "files.img" && before[name] != sum {
			t.Fatalf("client %s changed; only files.img may", name)
		}
	}
	for name, sum := range hashes(t, sDir) {
		if name != "files.img" && sBefore[name] != sum {
			t.Fatalf("server %s changed; only files.img may", name)
		}
	}
	cc, err := rewrite.Connections(cDir)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := rewrite.Connections(sDir)
	if err != nil {
		t.Fatal(err)
	}
	cConn, ok1 := find(cc, 7000)
	sConn, ok2 := find(sc, 7000)
	if !ok1 || !ok2 {
		t.Fatalf("connection to port 7000 not found after rewrite: client %v server %v", cc, sc)
	}
	t.Logf("client socket now %s, server socket now %s", cConn, sConn)
	if cConn.Local.Addr() != a2 || cConn.Remote.Addr() != b2 {
		t.Fatalf("client end %s, want %s -> %s", cConn, a2, b2)
	}
	if !sConn.Local.Addr().Is4In6() || !sConn.Remote.Addr().Is4In6() {
		t.Fatalf("server end %s: the dual-stack socket's IPv4-mapped addresses must stay mapped", sConn)
	}
	if sConn.Local.Addr().Unmap() != cConn.Remote.Addr() || sConn.Remote.Addr().Unmap() != cConn.Local.Addr() ||
		sConn.Local.Port() != cConn.Remote.Port() || sConn.Remote.Port() != cConn.Local.Port() {
		t.Fatalf("ends disagree after rewrite: client %s, server %s", cConn, sConn)
	}
	// The project's cut checker matches sockets by 4-tuple: it must pair the two ends
	// again on the new addresses (two directions of one connection).
	rep, err := criuimg.VerifyImages(map[string]string{"client": cDir, "server": sDir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Channels) != 2 {
		t.Fatalf("cut checker matched %d directions across the rewritten images, want 2: %s", len(rep.Channels), rep.Summary())
	}
	// The listener [::]:7000 is in the server's sockets but not mapped.
	for _, c := range reports[1].Changes {
		if c.State == 10 {
			t.Fatalf("listener rewritten: %s", c)
		}
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSetKeepsTheChecksumChain: Set on a sealed image set of a real dump rewrites
// files.img, updates exactly its manifest entry (the set verifies again), records the
// rewrite next to the manifest, and refuses a set whose files.img does not match its
// manifest (never re-sealing a corrupt file).
func TestSetKeepsTheChecksumChain(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := echoPair(t, dir)
	raw := l.dump(l.a, l.pids[1], "client", true)
	set := filepath.Join(dir, "set")
	if err := os.MkdirAll(set, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", raw, imageset.ImagesPath(set)).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	man := &imageset.Manifest{ContainerID: "client"}
	if err := imageset.Seal(set, man); err != nil {
		t.Fatal(err)
	}
	old, _ := man.Lookup("files.img")
	m, _ := rewrite.NewMap(map[netip.Addr]netip.Addr{a1: a2, b1: b2})

	// A corrupt files.img is refused, and stays as it was.
	fi := filepath.Join(imageset.ImagesPath(set), "files.img")
	orig, err := os.ReadFile(fi)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)-1] ^= 0xff
	if err := os.WriteFile(fi, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rewrite.Set(set, m, nil); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("Set on a corrupt files.img: %v, want imageset.ErrChecksum", err)
	}
	if got, _ := os.ReadFile(fi); string(got) != string(bad) {
		t.Fatal("Set modified a file it refused")
	}
	if err := os.WriteFile(fi, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r, err := rewrite.Set(set, m, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Changes) < 2 {
		t.Fatalf("Set changed %d addresses, want at least the client's local and remote: %+v", len(r.Changes), r)
	}
	got, err := imageset.Verify(set)
	if err != nil {
		t.Fatalf("set does not verify after the rewrite: %v", err)
	}
	now, _ := got.Lookup("files.img")
	if now.SHA256 == old.SHA256 {
		t.Fatal("manifest still has the old files.img digest")
	}
	for _, f := range got.Files {
		if f.Name == "files.img" {
			continue
		}
		if o, _ := man.Lookup(f.Name); o != f {
			t.Fatalf("manifest entry of %s changed: %+v -> %+v", f.Name, o, f)
		}
	}
	if !strings.Contains(logs.String(), "address rewritten in image") || !strings.Contains(logs.String(), "manifest entry updated") {
		t.Fatalf("the rewrite was not logged:\n%s", logs.String())
	}
	rec, err := os.ReadFile(filepath.Join(set, rewrite.RecordName))
	if err != nil || !strings.Contains(string(rec), old.SHA256) || !strings.Contains(string(rec), now.SHA256) {
		t.Fatalf("record of the rewrite missing or without both digests (%v):\n%s", err, rec)
	}
	if fi, err := os.Stat(filepath.Join(set, rewrite.RecordName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v (%v), want 0600", fi.Mode(), err)
	}
}

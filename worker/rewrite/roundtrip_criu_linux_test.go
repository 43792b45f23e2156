package rewrite_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

// dumpPair dumps the server and then the client of an echoPair (both exit), the way a
// coordinated snapshot does: each end's connection is network-locked by CRIU from its
// dump on, so nothing crosses between the two dumps. It returns the image directories
// and the last echo the client confirmed.
func dumpPair(t *testing.T, l *lab) (sDir, cDir string, last int) {
	t.Helper()
	srvPid, cliPid := l.pids[0], l.pids[1]
	sDir = l.dump(l.b, srvPid, "server", false)
	cDir = l.dump(l.a, cliPid, "client", false)
	last = lastOK(l.log("client"))
	if last < 20 {
		t.Fatalf("client confirmed %d echoes before the dump", last)
	}
	// The old namespaces, and with them the addresses a1 and b1, are gone.
	for _, ns := range []string{l.a, l.b} {
		sh(t, "ip", "netns", "del", ns)
	}
	return sDir, cDir, last
}

// TestConnectionSurvivesNewAddresses is the end-to-end proof without Docker: a TCP
// connection between namespaces a (a1) and b (b1) is dumped on both ends; the
// namespaces are recreated with different addresses (a2, b2); both image sets are
// rewritten with {a1->a2, b1->b2}; both processes are restored, network-locked until
// both exist. The client must continue on the same connection: the next echo is the
// one after the last before the dump, no gap, no duplicate, no reconnect, no reset.
func TestConnectionSurvivesNewAddresses(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := echoPair(t, dir)
	sDir, cDir, last := dumpPair(t, l)
	t.Logf("dumped both ends after echo %d", last)

	m, err := rewrite.NewMap(map[netip.Addr]netip.Addr{a1: a2, b1: b2})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for _, d := range []string{sDir, cDir} {
		r, err := rewrite.Images(d, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Changes) != 2 {
			t.Fatalf("%s: %d addresses rewritten, want 2 (local and remote of the connection): %+v", d, len(r.Changes), r)
		}
	}
	tRewrite := time.Since(t0)

	n := newLab(t, dir, a2, b2)
	n.lock(n.a)
	n.lock(n.b)
	t1 := time.Now()
	n.restore(n.b, sDir)
	n.restore(n.a, cDir)
	tRestore := time.Since(t1)
	if got := lastOK(n.log("client")); got != last {
		t.Fatalf("client echoed %d while both ends were locked (last before the dump %d)", got, last)
	}
	ss := n.in(n.a, "ss", "-tnH", "state", "established")
	if !strings.Contains(ss, a2.String()+":") || !strings.Contains(ss, b2.String()+":7000") {
		t.Fatalf("restored client socket is not %s -> %s:7000:\n%s", a2, b2, ss)
	}
	t2 := time.Now()
	n.unlock(n.a)
	n.unlock(n.b)
	n.waitFor(10*time.Second, "the first echo after the restore", func() bool { return lastOK(n.log("client")) > last })
	tFirst := time.Since(t2)
	n.waitFor(20*time.Second, "50 echoes after the restore", func() bool {
		return lastOK(n.log("client")) >= last+50 || strings.Contains(n.log("client"), "ERR")
	})
	clog, slog := n.log("client"), n.log("server")
	if strings.Contains(clog, "ERR") || strings.Count(clog, "connected") != 1 {
		t.Fatalf("client failed or reconnected after the restore:\n%s", tail(clog))
	}
	if strings.Count(slog, "accepted") != 1 || strings.Contains(slog, "closed") || strings.Contains(slog, "ERR") {
		t.Fatalf("server saw a new, closed or failed connection after the restore:\n%s", tail(slog))
	}
	all := oks(clog)
	for i := 1; i < len(all); i++ {
		if all[i] != all[i-1]+1 {
			t.Fatalf("echo sequence broken at %d -> %d (dump after %d)", all[i-1], all[i], last)
		}
	}
	t.Logf("connection %s <-> %s:7000 continued after the restore on new addresses: echoes %d..%d; rewrite %v (both sets), restore %v (both), first echo %v after unlock",
		a2, b2, last+1, all[len(all)-1], tRewrite.Round(time.Microsecond), tRestore.Round(time.Millisecond), tFirst.Round(time.Millisecond))
}

// TestWithoutRewrite is the control: the same dump restored on new addresses without
// rewriting. CRIU cannot restore the connection as it is (its local address does not
// exist any more), so the restore fails; restored with --tcp-close (what a swarm-native
// restore without an address map does) the processes come back and the client sees
// its connection closed.
func TestWithoutRewrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := echoPair(t, dir)
	cliPid := l.pids[1]
	sDir, cDir, last := dumpPair(t, l)
	n := newLab(t, dir, a2, b2)

	argv := []string{"--net=/run/netns/" + n.a, "--", "criu", "restore", "-d", "--tcp-established", "--network-lock", "nftables",
		"-D", cDir, "-o", "restore-unmapped.log", "-v4"}
	out, err := exec.Command("nsenter", argv...).CombinedOutput()
	t.Logf("criu restore without rewrite: %v %s", err, out)
	if err == nil {
		t.Fatalf("criu restored a connection on an address that does not exist: %s", out)
	}
	// CRIU kills what it forked on failure; the pid must be free before the next try.
	n.waitFor(10*time.Second, "the failed restore's process to go", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", cliPid))
		return os.IsNotExist(err)
	})
	b, _ := os.ReadFile(filepath.Join(cDir, "restore-unmapped.log"))
	var why []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Error") || strings.Contains(line, "rror") {
			why = append(why, strings.TrimSpace(line))
		}
	}
	t.Logf("unmapped restore refused by CRIU, as expected:\n%s", strings.Join(why, "\n"))
	if !strings.Contains(string(b), "Can't bind inet socket back: Cannot assign requested address") {
		t.Fatalf("CRIU failed for another reason than binding the old address; tail:\n%s", tailN(string(b), 20))
	}

	n.restore(n.b, sDir, "--tcp-close")
	n.restore(n.a, cDir, "--tcp-close")
	n.waitFor(10*time.Second, "the client to report its closed connection", func() bool { return strings.Contains(n.log("client"), "ERR") })
	if got := lastOK(n.log("client")); got != last {
		t.Fatalf("client echoed %d after a --tcp-close restore (last before %d)", got, last)
	}
	t.Logf("with --tcp-close the client came back with its connection closed: %s", strings.TrimSpace(tailN(n.log("client"), 1)))
}

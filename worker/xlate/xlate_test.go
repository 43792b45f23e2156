package xlate_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
	"github.com/swarmckpt/swarmckpt/worker/xlate/xlatetest"
)

var seq atomic.Int64

func TestFakeConformance(t *testing.T) {
	xlatetest.Run(t, xlate.NewFake(), func(t *testing.T) container.Ref {
		n := seq.Add(1)
		return container.Ref{ID: fmt.Sprint("c", n), Pid: int(n)}
	})
}

func TestScript(t *testing.T) {
	if s := xlate.Script(nil); strings.Contains(s, "chain") || !strings.Contains(s, "delete table inet "+xlate.Table) {
		t.Errorf("script without rules must only remove the table:\n%s", s)
	}
	s := xlate.Script([]xlate.Rule{{Old: netip.MustParseAddr("10.0.0.5"), New: netip.MustParseAddr("10.0.0.9")}})
	for _, want := range []string{"elements = { 10.0.0.5 : 10.0.0.9 }", "elements = { 10.0.0.9 : 10.0.0.5 }",
		"type route hook output priority raw", "ip daddr set ip daddr map @out4 notrack",
		"type filter hook prerouting priority raw", "ip saddr set ip saddr map @in4 notrack"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "ip6") {
		t.Errorf("an IPv4 translation wrote IPv6 rules:\n%s", s)
	}
}

// netnsProcess starts a process in a fresh network namespace: a stand-in for a container.
func netnsProcess(t *testing.T) container.Ref {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	self, _ := os.Readlink("/proc/self/ns/net")
	for range 200 {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if ns != "" && ns != self && strings.HasSuffix(exe, "sleep") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return container.Ref{ID: fmt.Sprint("netns-", cmd.Process.Pid), Pid: cmd.Process.Pid}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: the real translator needs root (nsenter + nft in a network namespace)")
	}
	for _, b := range []string{"nft", "nsenter", "unshare", "ss", "ip", "python3"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s not on PATH: %v", b, err)
		}
	}
}

func TestNFTConformance(t *testing.T) {
	requireRoot(t)
	xlatetest.Run(t, &xlate.NFT{}, netnsProcess)
}

// TestNFTTranslatesAConnection: two namespaces joined by a veth pair; the peer (A)
// dials OLD, which nobody has: with OLD translated to NEW (B's address) in A's
// namespace, the connection reaches B's server and the echo comes back to A's
// socket as from OLD; InUse sees it while it is open.
func TestNFTTranslatesAConnection(t *testing.T) {
	requireRoot(t)
	a, b := netnsProcess(t), netnsProcess(t)
	in := func(c container.Ref, args ...string) {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", c.Pid), "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	va, vb := fmt.Sprintf("xla%d", a.Pid%100000), fmt.Sprintf("xlb%d", a.Pid%100000)
	if out, err := exec.Command("ip", "link", "add", va, "type", "veth", "peer", "name", vb).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", va).Run() })
	for _, l := range [][2]string{{va, fmt.Sprint(a.Pid)}, {vb, fmt.Sprint(b.Pid)}} {
		if out, err := exec.Command("ip", "link", "set", l[0], "netns", l[1]).CombinedOutput(); err != nil {
			t.Fatalf("move %s: %v: %s", l[0], err, out)
		}
	}
	in(a, "ip", "addr", "add", "10.199.0.1/24", "dev", va)
	in(a, "ip", "link", "set", va, "up")
	in(a, "ip", "route", "add", "10.199.1.9/32", "dev", va) // OLD: on the link, owned by nobody
	in(b, "ip", "addr", "add", "10.199.0.2/24", "dev", vb)
	in(b, "ip", "link", "set", vb, "up")
	old, new := netip.MustParseAddr("10.199.1.9"), netip.MustParseAddr("10.199.0.2")
	tr := &xlate.NFT{}
	if err := tr.Add(t.Context(), a, old, new); err != nil {
		t.Fatal(err)
	}
	server := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", b.Pid), "--", "python3", "-c", `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.199.0.2", 7777)); s.listen(1)
c, peer = s.accept(); c.sendall(b"seen " + peer[0].encode() + b" " + c.recv(100)); c.recv(100)
`)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	time.Sleep(300 * time.Millisecond) // the listener binds (a connect before it is retried below)
	var out bytes.Buffer
	client := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", a.Pid), "--", "python3", "-c", `
import socket, time, sys
for i in range(30):
    try:
        c = socket.create_connection(("10.199.1.9", 7777), timeout=2); break
    except OSError:
        time.sleep(0.1)
c.sendall(b"hello"); print(c.recv(100).decode(), c.getpeername()[0]); sys.stdout.flush(); time.sleep(3)
`)
	client.Stdout, client.Stderr = &out, &out
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	used := false
	for i := 0; i < 40 && !used; i++ {
		time.Sleep(50 * time.Millisecond)
		var err error
		if used, err = tr.InUse(t.Context(), a, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v: %s", err, out.String())
	}
	// B saw A's own address; A's socket talks to OLD.
	if got := strings.TrimSpace(out.String()); got != "seen 10.199.0.1 hello 10.199.1.9" {
		t.Errorf("client got %q, want the echo through the translation", got)
	}
	if !used {
		t.Error("InUse did not see the open connection to OLD")
	}
	if err := tr.Remove(t.Context(), a, old); err != nil {
		t.Fatal(err)
	}
	if rules, err := tr.Rules(t.Context(), a); err != nil || len(rules) != 0 {
		t.Errorf("rules after Remove: %v, %v", rules, err)
	}
}

package netlock_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/netlock/netlocktest"
	"github.com/swarmckpt/swarmckpt/worker/tcpharden"
)

var seq atomic.Int64

func TestFakeConformance(t *testing.T) {
	netlocktest.Run(t, netlock.NewFake(), func(t *testing.T) container.Ref {
		n := seq.Add(1)
		return container.Ref{ID: fmt.Sprint("c", n), Pid: int(n)}
	})
}

// netnsProcess starts a process in a fresh network namespace: a stand-in for a container.
func netnsProcess(t *testing.T) container.Ref {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait until the child has entered its own namespace (exec of sleep done).
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 200; i++ {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if ns != "" && ns != self && strings.HasSuffix(exe, "sleep") {
			break
		}
		exec.Command("sleep", "0.01").Run()
	}
	return container.Ref{ID: fmt.Sprint("netns-", cmd.Process.Pid), Pid: cmd.Process.Pid}
}

func requireRootNFT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: the real netlock needs root (nsenter + nft in a network namespace)")
	}
	for _, b := range []string{"nft", "nsenter", "unshare"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s not on PATH: %v", b, err)
		}
	}
}

func TestNFTConformance(t *testing.T) {
	requireRootNFT(t)
	netlocktest.Run(t, &netlock.NFT{}, netnsProcess)
}

// TestNFTLeavesOtherTablesAlone checks Unlock removes exactly our table.
func TestNFTLeavesOtherTablesAlone(t *testing.T) {
	requireRootNFT(t)
	c := netnsProcess(t)
	nsenter := func(args ...string) string {
		out, err := exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", c.Pid), "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		return string(out)
	}
	nsenter("nft", "add", "table", "inet", "CRIU-other")
	l := &netlock.NFT{}
	ctx := t.Context()
	if err := l.Lock(ctx, c, []netip.Addr{netip.MustParseAddr("10.1.2.3")}); err != nil {
		t.Fatal(err)
	}
	if out := nsenter("nft", "list", "table", "inet", netlock.Table); !strings.Contains(out, `iifname "lo" accept`) {
		t.Fatalf("loopback accept rule missing:\n%s", out)
	}
	if err := l.Unlock(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	out := nsenter("nft", "list", "tables")
	if strings.Contains(out, netlock.Table) || !strings.Contains(out, "CRIU-other") {
		t.Fatalf("after Unlock tables are:\n%s\nwant only CRIU-other", out)
	}
}

func TestScriptUnlockedRemovesTable(t *testing.T) {
	s := netlock.Script(netlock.State{})
	if strings.Contains(s, "chain") || !strings.Contains(s, "delete table inet "+netlock.Table) {
		t.Fatalf("unlock script:\n%s", s)
	}
}

// TestNFTHardenStaysInTheNamespace: Harden writes the container's sysctl, seen from
// inside its namespace, and never the host's.
func TestNFTHardenStaysInTheNamespace(t *testing.T) {
	requireRootNFT(t)
	c := netnsProcess(t)
	host, err := os.ReadFile(tcpharden.Sysctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&netlock.NFT{}).Harden(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", c.Pid), "--", "cat", tcpharden.Sysctl).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("inside the namespace %s = %q (%v), want 0", tcpharden.Sysctl, out, err)
	}
	if after, _ := os.ReadFile(tcpharden.Sysctl); string(after) != string(host) {
		t.Fatalf("host %s changed from %q to %q", tcpharden.Sysctl, host, after)
	}
}

package pendingconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary, run with helperEnv set, connects (blocking) to the blackhole and
// writes the connect's outcome into the file named by helperEnv.
const helperEnv = "SWARMCKPT_PENDINGCONN_HELPER"

func TestMain(m *testing.M) {
	if status := os.Getenv(helperEnv); status != "" {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err == nil {
			err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: 80, Addr: [4]byte{127, 0, 0, 9}})
		}
		msg := "connected"
		if err != nil {
			msg = err.Error()
		}
		_ = os.WriteFile(status+".tmp", []byte(msg), 0o600)
		_ = os.Rename(status+".tmp", status)
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestFailEndsAPendingConnectAtOnce: a process blocked in connect() to an address whose
// SYNs are dropped (what a restored pending connect is until its retransmission timer
// fires) gets ECONNRESET as soon as Fail runs, and a pending connect Fail was not asked
// for is left alone.
func TestFailEndsAPendingConnectAtOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root (a network namespace, nftables, pidfd_getfd of another process)")
	}
	for _, bin := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s not on PATH: %v", bin, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("swarmckpt-pc-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	netns := "--net=/run/netns/" + ns
	run(t, "nsenter", netns, "ip", "link", "set", "lo", "up")
	run(t, "nsenter", netns, "nft", "add table inet pc; add chain inet pc out { type filter hook output priority 0; }; add rule inet pc out ip daddr 127.0.0.9 drop")

	dir := t.TempDir()
	start := func(name string) (*exec.Cmd, string) {
		status := filepath.Join(dir, name)
		c := exec.Command("nsenter", netns, exe, "-test.run=^$")
		c.Env = append(os.Environ(), helperEnv+"="+status)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c, status
	}
	// nsenter execs the helper: its pid is the helper's.
	target, targetStatus := start("target")
	other, otherStatus := start("other")
	portOf := func(pid int) uint16 {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid)); err == nil {
				es, _ := Parse(f)
				f.Close()
				fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
				for _, e := range es {
					for _, fd := range fds {
						l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
						if err == nil && e.State == tcpSynSent && e.Remote.Port() == 80 && l == fmt.Sprintf("socket:[%d]", e.Inode) {
							return e.Local.Port()
						}
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("pid %d holds no socket in SYN_SENT to port 80", pid)
		return 0
	}
	tPort, oPort := portOf(target.Process.Pid), portOf(other.Process.Pid)
	before, err := SynSent(target.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 {
		t.Fatalf("SynSent = %v, want the two pending connects of the namespace", before)
	}

	t0 := time.Now()
	failed, err := Fail(context.Background(), target.Process.Pid, []Ports{{tPort, 80}, {1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0] != (Ports{tPort, 80}) {
		t.Fatalf("failed %v, want only :%d->:80", failed, tPort)
	}
	var got []byte
	for time.Since(t0) < 900*time.Millisecond { // the SYN retransmission would come at 1 s
		if got, err = os.ReadFile(targetStatus); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the target's connect did not return within 0.9 s of Fail")
	}
	if !strings.Contains(string(got), syscall.ECONNRESET.Error()) {
		t.Fatalf("the target's connect returned %q, want %q", got, syscall.ECONNRESET.Error())
	}
	t.Logf("connect returned %q %v after Fail started", got, time.Since(t0).Round(time.Millisecond))
	if _, err := os.Stat(otherStatus); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the other pending connect (:%d, not asked for) returned too: %v", oPort, err)
	}
	// Nothing pending is left for a second call.
	if again, err := Fail(context.Background(), target.Process.Pid, []Ports{{tPort, 80}}); err != nil || len(again) != 0 {
		t.Fatalf("second Fail = %v, %v; want nothing", again, err)
	}
	// By inode, as the worker does at an unlock: the socket SynSent saw and the target's
	// (ended already, so skipped).
	failed, err = FailInodes(context.Background(), target.Process.Pid, before)
	if err != nil || len(failed) != 1 || failed[0] != (Ports{oPort, 80}) {
		t.Fatalf("FailInodes = %v, %v; want only :%d->:80", failed, err, oPort)
	}
	deadline := time.Now().Add(900 * time.Millisecond)
	for {
		if got, err := os.ReadFile(otherStatus); err == nil {
			if !strings.Contains(string(got), syscall.ECONNRESET.Error()) {
				t.Fatalf("the other connect returned %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other connect did not return within 0.9 s of FailInodes")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

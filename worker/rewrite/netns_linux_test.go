package rewrite_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lab is two network namespaces, "a" and "b", joined by a veth pair with one IPv4
// address each, and a private 0700 work directory. Everything (namespaces, processes
// started or restored in them) goes when the test ends. Processes enter a namespace
// with nsenter --net (not `ip netns exec`, which makes a new mount namespace that CRIU
// would then have to dump).
type lab struct {
	t    *testing.T
	id   string
	dir  string
	a, b string // namespace names
	pids []int  // processes to kill at the end (started or restored)
	// reaped is closed when a started process was waited for (its pid is free again).
	reaped map[int]chan struct{}
}

func requireCRIU(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: this test dumps and restores real processes with CRIU in network namespaces and needs root; run it as root after `make setup`")
	}
	for _, bin := range []string{"criu", "ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s not on PATH (%v); install CRIU >= 4.2 and nftables (make setup) to run the real CRIU address rewrite tests", bin, err)
		}
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var labSeq int

// newLab makes the namespaces with addresses aIP and bIP (a /24 each, same subnet).
func newLab(t *testing.T, dir string, aIP, bIP netip.Addr) *lab {
	t.Helper()
	requireCRIU(t)
	labSeq++
	l := &lab{t: t, dir: dir, id: fmt.Sprintf("%d%d", os.Getpid()%100000, labSeq)}
	l.a, l.b = "swrw-a-"+l.id, "swrw-b-"+l.id
	t.Cleanup(l.down)
	sh(t, "ip", "netns", "add", l.a)
	sh(t, "ip", "netns", "add", l.b)
	va, vb := "swrwa"+l.id, "swrwb"+l.id
	sh(t, "ip", "link", "add", va, "netns", l.a, "type", "veth", "peer", "name", vb, "netns", l.b)
	for _, x := range []struct {
		ns, dev string
		ip      netip.Addr
	}{{l.a, va, aIP}, {l.b, vb, bIP}} {
		l.in(x.ns, "ip", "link", "set", "lo", "up")
		l.in(x.ns, "ip", "addr", "add", x.ip.String()+"/24", "dev", x.dev)
		l.in(x.ns, "ip", "link", "set", x.dev, "up")
	}
	return l
}

func (l *lab) in(ns string, argv ...string) string {
	l.t.Helper()
	return sh(l.t, "nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, argv...)...)
}

func (l *lab) down() {
	for _, p := range l.pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, ns := range []string{l.a, l.b} {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
			l.t.Errorf("cleanup: ip netns del %s: %v\n%s", ns, err, out)
		}
	}
}

// start runs the test binary as helper role (see helper_test.go) in ns, in its own
// session, logging to <dir>/<name>.log.
func (l *lab) start(ns, name, role string) *exec.Cmd {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	defer log.Close()
	c := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", exe, "-test.run=^$")
	// MPTCP off: Go >= 1.24 may listen with it, and CRIU dumps plain TCP only.
	c.Env = append(os.Environ(), helperEnv+"="+role, "GODEBUG=multipathtcp=0")
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	// nsenter execs the helper: the pid is the helper's.
	l.pids = append(l.pids, c.Process.Pid)
	done := make(chan struct{})
	if l.reaped == nil {
		l.reaped = map[int]chan struct{}{}
	}
	l.reaped[c.Process.Pid] = done
	go func() { _ = c.Wait(); close(done) }()
	return c
}

func (l *lab) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name+".log"))
	return string(b)
}

var okRE = regexp.MustCompile(`(?m)^ok (\d+)$`)

func oks(log string) []int {
	var out []int
	for _, m := range okRE.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

func lastOK(log string) int {
	o := oks(log)
	if len(o) == 0 {
		return 0
	}
	return o[len(o)-1]
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func (l *lab) waitFor(timeout time.Duration, what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %v waiting for %s\nclient log:\n%s\nserver log:\n%s", timeout, what, tail(l.log("client")), tail(l.log("server")))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// criu runs criu in namespace ns with args, failing the test with the tail of its log.
func criu(t *testing.T, ns, dir, logName string, args ...string) {
	t.Helper()
	argv := append([]string{"--net=/run/netns/" + ns, "--", "criu"}, args...)
	argv = append(argv, "-D", dir, "-o", logName, "-v4")
	if out, err := exec.Command("nsenter", argv...).CombinedOutput(); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, logName))
		t.Fatalf("criu %s: %v\n%s\n--- tail of %s ---\n%s", strings.Join(args, " "), err, out, logName, tailN(string(b), 40))
	}
}

func tailN(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dump checkpoints pid (and its children) into a fresh 0700 directory dir/name with
// its established TCP connections, locking them with nftables.
func (l *lab) dump(ns string, pid int, name string, leaveRunning bool) string {
	l.t.Helper()
	d := filepath.Join(l.dir, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		l.t.Fatal(err)
	}
	args := []string{"dump", "-t", strconv.Itoa(pid), "--tcp-established", "--network-lock", "nftables"}
	if leaveRunning {
		args = append(args, "--leave-running")
	}
	criu(l.t, ns, d, "dump.log", args...)
	if !leaveRunning {
		// CRIU restores the same pid: wait until the dumped process is reaped.
		if done, ok := l.reaped[pid]; ok {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				l.t.Fatalf("process %d still not reaped 10 s after its dump", pid)
			}
		}
		// Gone: never kill that pid later (CRIU restores it, or someone else gets it).
		for i, p := range l.pids {
			if p == pid {
				l.pids = append(l.pids[:i], l.pids[i+1:]...)
				break
			}
		}
	}
	return d
}

// lockScript drops every packet but loopback in a namespace (as netlock does).
const lockScript = `table inet swrwlock {
	chain in { type filter hook input priority -300; policy accept; iif "lo" accept; drop; }
	chain out { type filter hook output priority -300; policy accept; oif "lo" accept; drop; }
}
`

func (l *lab) lock(ns string) {
	l.t.Helper()
	p := filepath.Join(l.dir, "lock.nft")
	if err := os.WriteFile(p, []byte(lockScript), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.in(ns, "nft", "-f", p)
}

func (l *lab) unlock(ns string) { l.t.Helper(); l.in(ns, "nft", "delete", "table", "inet", "swrwlock") }

// restore restores the images in dir into namespace ns (detached) and returns the pid.
func (l *lab) restore(ns, dir string, extra ...string) int {
	l.t.Helper()
	pidfile := filepath.Join(dir, "restored.pid")
	args := append([]string{"restore", "-d", "--tcp-established", "--network-lock", "nftables", "--pidfile", pidfile}, extra...)
	criu(l.t, ns, dir, "restore.log", args...)
	b, err := os.ReadFile(pidfile)
	if err != nil {
		l.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		l.t.Fatal(err)
	}
	l.pids = append(l.pids, pid)
	return pid
}

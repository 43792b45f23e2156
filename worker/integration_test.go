package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// swarmckptBinary builds cmd/swarmckpt once per test run.
func swarmckptBinary(t *testing.T) string {
	binOnce.Do(func() {
		binPath = filepath.Join(os.TempDir(), fmt.Sprintf("swarmckpt-worker-test-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/swarmckpt")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/swarmckpt: %w: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// daemonToken is the worker token file shared by every daemon of this test run (the
// workers of a test send their sets to each other), next to the test binary.
func daemonToken(t *testing.T) (file, token string) {
	file = swarmckptBinary(t) + ".token"
	token, err := worker.WriteNewTokenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, token
}

// daemon starts `swarmckpt worker` for node as a separate process and returns a client
// and the process (to kill -9).
func daemon(t *testing.T, n dockertest.Node, name string) (*worker.Client, *exec.Cmd, string) {
	return daemonArgs(t, n, name)
}

// daemonArgs is daemon with more flags for the worker.
func daemonArgs(t *testing.T, n dockertest.Node, name string, extra ...string) (*worker.Client, *exec.Cmd, string) {
	bin := swarmckptBinary(t)
	tokenFile, token := daemonToken(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	addrFile := filepath.Join(dir, "addr")
	if !slices.Contains(extra, "--tls-ca") {
		extra = append(extra, "--insecure-no-tls") // workers on one host
	}
	cmd := exec.Command(bin, append([]string{"worker", "--node", name, "--docker-host", n.Host, "--exec-root", n.ExecRoot,
		"--journal", journal, "--addr-file", addrFile, "--token-file", tokenFile}, extra...)...)
	logf, _ := os.Create(filepath.Join(dir, "worker.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		os.RemoveAll(journal) // the watchdog exits when its journal goes
	})
	for i := 0; i < 500; i++ {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			return &worker.Client{Addr: strings.TrimSpace(string(b)), Token: token}, cmd, journal
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
	t.Fatalf("worker did not start: %s", b)
	return nil, nil, ""
}

func lastCount(logs string) int {
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	n, _ := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "count "))
	return n
}

// TestKilledWorkerLeavesNothingLockedOrFrozen: the worker is killed with -9 while a
// container is frozen and locked until a deadline a minute away; the watchdog, which
// watches the worker's process, thaws and unlocks it at once (issue 21: it used to
// wait for the deadline).
func TestKilledWorkerLeavesNothingLockedOrFrozen(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	name := "dpworker-kill9"
	node.Run(t, name, dockertest.Image, "counter")
	node.WaitLog(t, name, 10*time.Second, "counting", func(l string) bool { return strings.Contains(l, "count 1\n") })
	cl, proc, _ := daemon(t, node, "kill9")
	ctx := dockertest.Context(t, time.Minute)
	deadline := time.Now().Add(time.Minute)
	if err := cl.Lock(ctx, name, nil, deadline); err != nil {
		t.Fatal(err)
	}
	if err := cl.Freeze(ctx, name, deadline); err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(node.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", name))
	ref := container.Ref{Name: name, Pid: pid}
	if f, err := (&freezer.Cgroup{}).Frozen(ctx, ref); err != nil || !f {
		t.Fatalf("not frozen after Freeze: %v %v", f, err)
	}
	frozenAt := lastCount(node.MustDocker(t, "logs", name))
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_, _ = proc.Process.Wait()
	// At once: counting again, and our nft table is gone.
	node.WaitLog(t, name, 5*time.Second, "counting after the worker died", func(l string) bool { return lastCount(l) > frozenAt })
	for {
		out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid), "nft", "list", "tables").CombinedOutput()
		if err == nil && !strings.Contains(string(out), netlock.Table) {
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("5 s after the worker was killed the container's tables are: %s (%v)", out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if late := time.Since(killed); late > 3*time.Second {
		t.Fatalf("released %v after the worker was killed, want at once (its deadline is %v away)", late, time.Until(deadline).Round(time.Second))
	}
	t.Logf("released %v after the worker was killed", time.Since(killed).Round(time.Millisecond))
}

var sumRE = regexp.MustCompile(`sum ([0-9a-f]{64}) pass (\d+)`)

// memhogPair starts a memhog of mib MiB named <prefix>-N on node 1, waits for its first
// memory checksum (want) and starts a worker daemon on each of two nodes.
func memhogPair(t *testing.T, prefix string, mib int) (src, dst dockertest.Node, name, want string, a, b *worker.Client) {
	t.Helper()
	nodes := dockertest.Nodes(t, 2)
	src, dst = nodes[0], nodes[1]
	name, want = runMemhog(t, src, prefix, mib)
	a, _, _ = daemon(t, src, "src")
	b, _, _ = daemon(t, dst, "dst")
	return src, dst, name, want, a, b
}

// runMemhog starts a memhog of mib MiB on n and returns its name and first checksum.
func runMemhog(t *testing.T, n dockertest.Node, prefix string, mib int) (name, want string) {
	t.Helper()
	name = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%100000)
	n.Run(t, name, dockertest.Image, "memhog", strconv.Itoa(mib))
	logs := n.WaitLog(t, name, 20*time.Second, "first checksum", func(l string) bool { return sumRE.MatchString(l) })
	return name, sumRE.FindStringSubmatch(logs)[1]
}

// restoredKeepsMemory restores set on dst through b and checks that the memhog came back
// with the memory checksum want, continuing its passes rather than starting afresh.
func restoredKeepsMemory(ctx context.Context, t *testing.T, b *worker.Client, dst dockertest.Node, name, set, want string) {
	t.Helper()
	restoredKeepsMemoryWith(ctx, t, b, dst, name, set, want, worker.RestoreOptions{})
}

// restoredKeepsMemoryWith is restoredKeepsMemory with the restore's options o (its
// runtime always swarmckpt).
func restoredKeepsMemoryWith(ctx context.Context, t *testing.T, b *worker.Client, dst dockertest.Node, name, set, want string, o worker.RestoreOptions) {
	t.Helper()
	t.Cleanup(func() { _, _ = dst.Docker("rm", "-f", name) })
	o.Runtime = "swarmckpt"
	ref, err := b.Restore(ctx, set, o)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Pid <= 0 {
		t.Fatalf("restored ref %+v", ref)
	}
	logs := dst.WaitLog(t, name, 20*time.Second, "checksum after restore", func(l string) bool { return sumRE.MatchString(l) })
	got := sumRE.FindStringSubmatch(logs)
	if got[1] != want {
		t.Fatalf("memory checksum after the migration %s, before %s", got[1], want)
	}
	if p, _ := strconv.Atoi(got[2]); p == 0 {
		t.Fatalf("restored process printed pass 0: it started fresh instead of being restored")
	}
}

// TestMemhogMigratesWithIdenticalMemory: dump on one node, stream to another, restore;
// the memory checksum computed by the restored process equals the original's.
func TestMemhogMigratesWithIdenticalMemory(t *testing.T) {
	_, dst, name, want, a, b := memhogPair(t, "dpmemhog", 64)
	ctx := dockertest.Context(t, 2*time.Minute)
	set := name + ".set"
	if _, err := a.Dump(ctx, name, set, false); err != nil {
		t.Fatal(err)
	}
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, set, bi.Addr); err != nil {
		t.Fatal(err)
	}
	restoredKeepsMemory(ctx, t, b, dst, name, set, want)
}

// TestMemhogPostCopy: post-copy migration (lazy pages): the container restarts on the
// other node before its memory moved; pages come on demand from the source's page
// server; the checksum matches and the source exits once every page was fetched.
func TestMemhogPostCopy(t *testing.T) {
	src, dst, name, want, a, b := memhogPair(t, "dppostcopy", 128)
	ctx := dockertest.Context(t, 2*time.Minute)
	if ai, err := a.Info(ctx); err != nil || !ai.PostCopy.OK {
		t.Skipf("SKIPPED LOUDLY: post-copy cannot run on this node: %s %v", ai.PostCopy.Reason, err)
	}
	postCopyKeepsMemory(ctx, t, src, dst, a, b, name, want)
}

// postCopyKeepsMemory migrates the memhog name from src (worker a) to dst (worker b)
// post-copy and checks its memory and that the source exits once every page moved.
func postCopyKeepsMemory(ctx context.Context, t *testing.T, src, dst dockertest.Node, a, b *worker.Client, name, want string) {
	t.Helper()
	set := name + ".set"
	before := pipeMaxSize(t)
	m, err := a.DumpLazy(ctx, name, set, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// CRIU's lazy page server needs a 4 MiB pipe: the worker holds the setting raised
	// while it serves (worker/pipemax), and puts it back after.
	if v := pipeMaxSize(t); v < migrate.MinPipeMaxSize {
		t.Fatalf("fs.pipe-max-size %d while the post-copy page server runs, want >= %d", v, migrate.MinPipeMaxSize)
	}
	defer func() {
		if t.Failed() {
			return
		}
		// Other packages' post-copy tests may hold a raise of their own for a while.
		deadline := time.Now().Add(2 * time.Minute)
		for v := pipeMaxSize(t); v != before; v = pipeMaxSize(t) {
			if time.Now().After(deadline) {
				t.Fatalf("fs.pipe-max-size %d two minutes after the post-copy ended, %d before it", v, before)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("fs.pipe-max-size raised to >= 4 MiB while serving, back to %d after", before)
	}()
	if m.LazyPages == "" || m.TotalBytes() > 16<<20 {
		t.Fatalf("lazy dump wrote %d bytes, page server %q: memory should not be in the set", m.TotalBytes(), m.LazyPages)
	}
	bi, _ := b.Info(ctx)
	if _, err := a.Send(ctx, set, bi.Addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dst.Docker("rm", "-f", name) })
	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Runtime: "swarmckpt"}); err != nil {
		t.Fatal(err)
	}
	logs := dst.WaitLog(t, name, 30*time.Second, "checksum after post-copy restore", func(l string) bool { return sumRE.MatchString(l) })
	got := sumRE.FindStringSubmatch(logs)
	if got[1] != want {
		t.Fatalf("memory checksum after post-copy %s, before %s", got[1], want)
	}
	// The source exits once the lazy transfer completed.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := src.Docker("inspect", "-f", "{{.State.Status}}", name); st == "exited" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("source %s still not exited 30 s after the post-copy restore", name)
}

// pipeMaxSize reads the host's fs.pipe-max-size.
func pipeMaxSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

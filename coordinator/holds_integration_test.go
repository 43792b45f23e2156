package coordinator_test

// Holds that outlive the failure (issue 21 §2): a worker killed with -9 while its
// containers are frozen and network-locked must not leave them so until the watchdog's
// deadline. Part of TestIntegrationE2E (its lab).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// releaseWithin is how long after the failure a container may still be held.
const releaseWithin = 5 * time.Second

// kill9WorkerReleasesAtOnce kills a node's worker with -9 while a blocking snapshot
// holds its containers frozen and locked: every container of that node (also those the
// snapshot was not dumping at that moment) must run again and be unlocked within
// releaseWithin, by the watchdog, which watches the worker's process. Then the same
// with the watchdog killed too and the worker restarted 0.5 s later: the restarted
// worker releases them on start. The agent stays up throughout; the worker comes back
// on its address, as a supervisor would restart it, and a snapshot then commits.
func (e *e2e) kill9WorkerReleasesAtOnce(t *testing.T) {
	e.t = t
	node := e.busiestNode(t)
	journal := watchdog.Journal{Dir: e.journalDir(node)}
	addr := e.workerAddr(node)
	for _, alsoWatchdog := range []bool{false, true} {
		what := "worker killed"
		if alsoWatchdog {
			what = "worker and watchdog killed, worker restarted 0.5 s later"
		}
		killed, out, wait := e.killWorkerWhileFrozen(t, node, journal, alsoWatchdog)
		from := killed
		if alsoWatchdog {
			time.Sleep(500 * time.Millisecond) // the supervisor's restart delay, not a sync
			from = time.Now()
			e.startWorkerAt(node, addr)
		}
		e.waitReleased(t, node, journal, from, what)
		code := wait()
		t.Logf("%s: snapshot exited %d:\n%s", what, code, tail(out.String(), 1500))
		if code != 5 && !strings.Contains(out.String(), "committed") {
			t.Errorf("%s: snapshot exit %d, want 5 (aborted) or committed:\n%s", what, code, out.String())
		}
		if !alsoWatchdog {
			e.startWorkerAt(node, addr)
		}
	}
	waitLong(t, "bank healthy after the worker restarted", func() bool { _, ok := e.bankOK(); return ok })
	if o, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", "bank-kwr-after"); code != 0 {
		t.Fatalf("snapshot after the worker restarted: exit %d\n%s", code, o)
	}
}

// killWorkerWhileFrozen starts blocking snapshots of bank until one has frozen and
// locked a container of node, then kills node's worker (and its watchdog if
// alsoWatchdog) with -9. It returns when, the CLI's output and a wait for the CLI's
// exit code.
func (e *e2e) killWorkerWhileFrozen(t *testing.T, node string, journal watchdog.Journal, alsoWatchdog bool) (time.Time, *lockedBuffer, func() int) {
	t.Helper()
	for try := range 5 {
		id := fmt.Sprintf("bank-kwr-%v-%d", alsoWatchdog, try)
		cmd := exec.Command(e.bin, "snapshot", "bank", "--id", id, "--algorithm", "blocking", "--nats", e.nats, "--data-dir", e.dir)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		codec := make(chan int, 1)
		go func() {
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			codec <- code
		}()
		wait := func() int {
			select {
			case c := <-codec:
				return c
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("snapshot %s still running 2 min after the worker was killed:\n%s", id, out.String())
				return 0
			}
		}
		frozen, ended := false, false
		for !frozen && !ended {
			holds, _ := journal.List()
			for _, h := range holds {
				frozen = frozen || h.Frozen && h.Locked
			}
			select {
			case c := <-codec:
				codec <- c
				ended = true
			case <-time.After(2 * time.Millisecond):
			}
		}
		if !frozen {
			t.Logf("try %d: snapshot %s ended (exit %d) before a container of %s was seen frozen; again", try+1, id, wait(), node)
			continue
		}
		if alsoWatchdog {
			pid := watchdogPid(t, journal.Dir)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill the watchdog (pid %d): %v", pid, err)
			}
		}
		if err := e.workers[node].Process.Kill(); err != nil {
			t.Fatal(err)
		}
		return time.Now(), out, wait
	}
	t.Fatalf("5 snapshots ended before any froze a container of %s", node)
	return time.Time{}, nil, nil
}

// watchdogPid is the PID of the watchdog process of journal dir (it runs
// `swarmckpt worker watchdog --journal DIR`, started by the worker this test started).
func watchdogPid(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 5 && args[1] == "worker" && args[2] == "watchdog" && args[3] == "--journal" && args[4] == dir {
			var pid int
			if _, err := fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no watchdog process of %s", dir)
	return 0
}

// cpuTicks is the user+system CPU time of pid in clock ticks (0 if unreadable).
func cpuTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var ut, st uint64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return ut + st
}

// waitReleased polls until no container of node is frozen or locked and the journal
// holds nothing, for at most releaseWithin from since; it fails naming what is held.
func (e *e2e) waitReleased(t *testing.T, node string, journal watchdog.Journal, since time.Time, what string) {
	t.Helper()
	ctx := context.Background()
	refs := e.nodeContainers(t, node)
	fr, nl := &freezer.Cgroup{}, &netlock.NFT{}
	var held []string
	for {
		held = held[:0]
		for _, c := range refs {
			if f, err := fr.Frozen(ctx, c); err != nil || f {
				held = append(held, fmt.Sprintf("%s frozen (%v)", c.Name, err))
			}
			if st, err := nl.State(ctx, c); err != nil || st.Locked() {
				held = append(held, fmt.Sprintf("%s locked %+v (%v)", c.Name, st, err))
			}
		}
		if hs, _ := journal.List(); len(hs) > 0 {
			held = append(held, fmt.Sprintf("%d holds journaled", len(hs)))
		}
		if len(held) == 0 {
			t.Logf("%s: %d containers of %s released %v after", what, len(refs), node, time.Since(since).Round(time.Millisecond))
			break
		}
		if time.Since(since) > releaseWithin {
			t.Fatalf("%s: %v later still held on %s: %s", what, time.Since(since).Round(time.Millisecond), node, strings.Join(held, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The processes run: their CPU time grows.
	for _, c := range refs {
		t0 := cpuTicks(c.Pid)
		waitFor(t, c.Name+" running (its CPU time grows)", func() bool { return cpuTicks(c.Pid) > t0 })
	}
}

// busiestNode is the lab node running the most containers of the bank stack.
func (e *e2e) busiestNode(t *testing.T) string {
	best, n := "", -1
	for i := 1; i <= 3; i++ {
		node := fmt.Sprintf("%s-%d", e.name, i)
		if k := len(e.nodeContainers(t, node)); k > n {
			best, n = node, k
		}
	}
	return best
}

// nodeContainers are the running containers of the bank stack on node.
func (e *e2e) nodeContainers(t *testing.T, node string) []container.Ref {
	t.Helper()
	env := append(os.Environ(), "DOCKER_HOST="+e.docker(node))
	ps := exec.Command("docker", "ps", "-q", "--no-trunc", "--filter", "label=com.docker.stack.namespace=bank")
	ps.Env = env
	ids, err := ps.Output()
	if err != nil {
		t.Fatalf("docker ps on %s: %v", node, err)
	}
	var refs []container.Ref
	for _, id := range strings.Fields(string(ids)) {
		in := exec.Command("docker", "inspect", "-f", "{{.Name}} {{.State.Pid}}", id)
		in.Env = env
		o, err := in.Output()
		if err != nil {
			t.Fatalf("docker inspect %s on %s: %v", id, node, err)
		}
		var name string
		var pid int
		if _, err := fmt.Sscan(string(o), &name, &pid); err != nil {
			t.Fatalf("docker inspect %s: %q: %v", id, o, err)
		}
		refs = append(refs, container.Ref{ID: id, Name: strings.TrimPrefix(name, "/"), Pid: pid})
	}
	return refs
}

func (e *e2e) journalDir(node string) string {
	return fmt.Sprintf("/run/swarmckpt/%s/holds-%s", e.name, node)
}

// workerAddr is the address node's worker listens on (its --addr-file).
func (e *e2e) workerAddr(node string) string {
	b, err := os.ReadFile(filepath.Join(e.dir, node+".addr"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startWorkerAt restarts node's worker on addr, as startWorker does, so that the
// agent, which read the address once, reaches it again.
func (e *e2e) startWorkerAt(node, addr string) {
	addrFile := filepath.Join(e.dir, node+".addr")
	_ = os.Remove(addrFile)
	logName := ""
	for n := 1; logName == ""; n++ { // each restart logs to a file of its own
		if _, err := os.Stat(filepath.Join(e.dir, fmt.Sprintf("worker-%s-restart%d.log", node, n))); os.IsNotExist(err) {
			logName = fmt.Sprintf("worker-%s-restart%d", node, n)
		}
	}
	e.workers[node] = e.start(logName, "worker", "--node", node, "--docker-host", e.docker(node),
		"--exec-root", fmt.Sprintf("/run/swarmckpt/%s/%s/exec", e.name, node),
		"--journal", e.journalDir(node), "--addr-file", addrFile, "--listen", addr,
		"--token-file", e.workerToken(), "--insecure-no-tls")
	waitFor(e.t, "worker "+node+" address", func() bool { _, err := os.Stat(addrFile); return err == nil })
}

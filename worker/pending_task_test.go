package worker_test

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

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// connectHelperEnv makes the test binary (TestMain) connect, blocking, to 127.0.0.9:80
// and write the connect's outcome into the file it names.
const connectHelperEnv = "SWARMCKPT_TEST_CONNECT"

func connectHelper(status string) {
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
	os.Exit(0)
}

// TestSwarmTaskUnlockEndsPendingConnects: a swarm task restored network-locked (the
// coordinator's swarm-mode restore) whose process waits in connect() (its SYN went
// into the lock) has that connect ended at once by the coordinator's Unlock, as an
// exact restore's container has: ECONNRESET well before the SYN's 1 s retransmission.
// The task's process is a real one blocked in connect() in a network namespace that
// drops its SYNs; the container around it is a fake.
func TestSwarmTaskUnlockEndsPendingConnects(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP INTEGRATION: needs root (a network namespace, nftables, pidfd_getfd of another process)")
	}
	for _, bin := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP INTEGRATION: %s not on PATH: %v", bin, err)
		}
	}
	runCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ns := fmt.Sprintf("swarmckpt-pt-%d", os.Getpid())
	runCmd("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	netns := "--net=/run/netns/" + ns
	runCmd("nsenter", netns, "ip", "link", "set", "lo", "up")
	runCmd("nsenter", netns, "nft", "add table inet pt; add chain inet pt out { type filter hook output priority 0; }; add rule inet pt out ip daddr 127.0.0.9 drop")

	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(dir, "connect")
	helper := exec.Command("nsenter", netns, exe, "-test.run=^$")
	helper.Env = append(os.Environ(), connectHelperEnv+"="+status)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	pid := helper.Process.Pid // nsenter execs the helper
	waitFor(t, "the helper's connect pending", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		return err == nil && strings.Contains(string(b), ":0050 02 ") // to port 80, in SYN_SENT
	})

	insp, lock := container.NewFake(), netlock.NewFake()
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot = filepath.Join(dir, "data")
	cfg.JournalDir = filepath.Join(dir, "journal")
	cfg.WatchdogArgv = watchdogArgv(t)
	placer := &restore.Docker{DataRoot: cfg.DataRoot}
	w, err := worker.New(cfg, worker.Parts{Inspector: insp, Locker: lock, Freezer: freezer.NewFake(), Dumper: dump.Fake{},
		Restorer: restore.NewFake(filepath.Join(dir, "consumed"), "img"), Placer: placer, Features: migrate.StaticFeatures{},
		EndPendingConnects: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(cfg.JournalDir) })
	ctx := context.Background()

	set := filepath.Join(w.SetsDir(), "snap.st_web.1")
	if _, err := (dump.Fake{}).Dump(ctx, container.Ref{ID: "old", Pid: 1}, container.Spec{Image: "img"}, set, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(imageset.ImagesPath(set), "files.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crit.New(nil, f, "", false, false).Encode(&crit.CriuImage{Magic: "FILES"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := imageset.ReadManifest(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := imageset.Seal(set, m); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PlaceTask(ctx, "snap.st_web.1", worker.TaskOptions{Service: "st_web", Slot: 1, LockUntil: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// The wrapper claims the placement for the task container, which comes up locked.
	task := container.Ref{ID: "7a5c0000000000000000000000000000000000000000000000000000000000ee", Name: "st_web.1.abc", Pid: pid}
	placed := filepath.Join(placer.Area(), ociwrap.ForTask("st_web", 1))
	if err := os.Rename(placed, placed+".restoring-"+task.ID); err != nil {
		t.Fatal(err)
	}
	insp.Add(task, container.Spec{Name: task.Name, Image: "img"})
	if err := lock.Lock(ctx, task, nil); err != nil {
		t.Fatal(err)
	}
	j := watchdog.Journal{Dir: cfg.JournalDir}
	waitFor(t, "the task's lock journaled", func() bool {
		h, ok, err := j.Get(task.ID)
		return err == nil && ok && h.Locked
	})
	if _, err := os.Stat(status); err == nil {
		t.Fatal("the helper's connect returned before the unlock: the test proves nothing")
	}

	t0 := time.Now()
	if err := w.Unlock(ctx, task.ID, nil); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for time.Since(t0) < 900*time.Millisecond { // the SYN's retransmission would come at 1 s (and be dropped)
		if got, err = os.ReadFile(status); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		t.Fatal("the task's pending connect was not ended within 0.9 s of the coordinator's unlock")
	}
	if !strings.Contains(string(got), syscall.ECONNRESET.Error()) {
		t.Fatalf("the task's connect returned %q, want %q", got, syscall.ECONNRESET.Error())
	}
	t.Logf("the task's connect returned %q %v after the unlock", got, time.Since(t0).Round(time.Millisecond))
}

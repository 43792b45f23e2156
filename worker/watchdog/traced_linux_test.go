package watchdog

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

// TestReleaseWaitsWhileTraced: a container whose process is ptrace-seized (a dead
// worker's CRIU still dumping it) is released only once it is not traced any more, or
// after UntracedWait; an untraced one at once.
func TestReleaseWaitsWhileTraced(t *testing.T) {
	ctx := context.Background()
	fr, lk := freezer.NewFake(), netlock.NewFake()
	r := Releaser{Lock: lk, Freeze: fr, Owns: func(int, string) bool { return true }, UntracedWait: 400 * time.Millisecond}
	release := func(pid int) time.Duration {
		c := container.Ref{ID: "c1", Name: "web", Pid: pid}
		if err := fr.Freeze(ctx, c); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if ok, err := r.Release(ctx, Hold{ContainerID: c.ID, Name: c.Name, Pid: pid, Frozen: true}); !ok || err != nil {
			t.Fatalf("release: %v %v", ok, err)
		}
		if f, _ := fr.Frozen(ctx, c); f {
			t.Fatal("still frozen after the release")
		}
		return time.Since(start)
	}
	plain := exec.Command("sleep", "30")
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = plain.Process.Kill(); _ = plain.Wait() }()
	if d := release(plain.Process.Pid); d > 200*time.Millisecond {
		t.Fatalf("an untraced container was released after %v, want at once", d)
	}
	// A child that asks to be traced (PTRACE_TRACEME) stops at its exec, traced by
	// this process: TracerPid is set, as CRIU's PTRACE_SEIZE sets it.
	traced := exec.Command("sleep", "30")
	traced.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := traced.Start(); err != nil {
		t.Skipf("SKIP: cannot start a traced child here: %v", err)
	}
	defer func() { _ = traced.Process.Kill(); _ = traced.Wait() }()
	if tracerOf(traced.Process.Pid) == 0 {
		t.Fatal("the traced child shows no TracerPid")
	}
	if d := release(traced.Process.Pid); d < 400*time.Millisecond {
		t.Fatalf("a traced container was released after %v, want after UntracedWait (400ms)", d)
	}
}

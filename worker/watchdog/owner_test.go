package watchdog

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and ')' (field 2 may hold anything).
	line := "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 200 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
	if got, err := parseStat(4242, line); err != nil || got != 987654 {
		t.Fatalf("start = %d, %v; want 987654", got, err)
	}
	zombie := "4242 (w) Z 1 4242 4242 0 -1 4194560 200 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
	if _, err := parseStat(4242, zombie); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("a zombie: err = %v, want ErrNoProcess", err)
	}
	if _, err := parseStat(4242, "4242 (w) S 1"); err == nil || errors.Is(err, ErrNoProcess) {
		t.Fatalf("a short line: err = %v, want a parse error", err)
	}
}

// child starts a process that runs until killed and returns it as an Owner; the test
// reaps it at the end.
func child(t *testing.T) (*exec.Cmd, Owner) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start, err := procStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, Owner{Pid: cmd.Process.Pid, Start: start}
}

func TestOwnerAlive(t *testing.T) {
	self, err := Self()
	if err != nil || !self.Alive() {
		t.Fatalf("Self() = %v, %v: not alive", self, err)
	}
	if (Owner{Pid: self.Pid, Start: self.Start + 1}).Alive() {
		t.Fatal("an owner whose start time differs (a reused PID) is alive")
	}
	cmd, o := child(t)
	if !o.Alive() {
		t.Fatal("a running child is not alive")
	}
	_ = cmd.Process.Kill()
	waitUntil(t, "killed child (a zombie, not reaped) seen as ended", func() bool { return !o.Alive() })
	_ = cmd.Wait()
	if o.Alive() {
		t.Fatal("a reaped child is alive")
	}
}

func TestExited(t *testing.T) {
	cmd, o := child(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := Exited(ctx, o, 20*time.Millisecond)
	select {
	case <-ch:
		t.Fatal("Exited closed for a running process")
	default:
	}
	_ = cmd.Process.Kill() // not reaped: a zombie still holds the PID
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("Exited not closed 2 s after the process was killed")
	}
	// An owner that ended before the watch began.
	_ = cmd.Wait()
	select {
	case <-Exited(ctx, o, 20*time.Millisecond):
	case <-time.After(2 * time.Second):
		t.Fatal("Exited not closed for a process that was gone")
	}
	// Without a pidfd: /proc is looked at every interval.
	cmd2, o2 := child(t)
	done := make(chan struct{})
	go pollExited(ctx, o2, 10*time.Millisecond, done)
	_ = cmd2.Process.Kill()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("pollExited not done 2 s after the process was killed")
	}
}

// TestRunReleasesAtOnceWhenTheOwnerDies: a hold whose deadline is an hour away is
// released within a second of its owner (a real process) being killed with -9; a hold
// of another owner that still runs is kept.
func TestRunReleasesAtOnceWhenTheOwnerDies(t *testing.T) {
	j := Journal{Dir: t.TempDir() + "/journal"}
	if err := os.Mkdir(j.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fr, lk := freezer.NewFake(), netlock.NewFake()
	r := Releaser{Lock: lk, Freeze: fr, Owns: func(int, string) bool { return true }}
	ctx := context.Background()
	owner, o := child(t)
	_, other := child(t)
	held := func(c container.Ref) bool {
		frozen, _ := fr.Frozen(ctx, c)
		st, _ := lk.State(ctx, c)
		return frozen || st.Locked()
	}
	var dying, living container.Ref
	for i, c := range []*container.Ref{&dying, &living} {
		*c = container.Ref{ID: []string{"c1", "c2"}[i], Name: []string{"web", "db"}[i], Pid: 42 + i}
		if err := fr.Freeze(ctx, *c); err != nil {
			t.Fatal(err)
		}
		if err := lk.Lock(ctx, *c, nil); err != nil {
			t.Fatal(err)
		}
		who := []Owner{o, other}[i]
		if err := j.Put(Hold{ContainerID: c.ID, Name: c.Name, Pid: c.Pid, Locked: true, Frozen: true,
			Deadline: time.Now().Add(time.Hour), Owner: &who}); err != nil {
			t.Fatal(err)
		}
	}
	// While both owners run, nothing is released.
	if rel, err := r.Reconcile(ctx, j, time.Now()); err != nil || len(rel) != 0 {
		t.Fatalf("released %v (%v) while their owners run", rel, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx, j, 20*time.Millisecond) }()
	defer func() { stop(); <-done }()
	killed := time.Now()
	if err := owner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the dead owner's container released", func() bool { return !held(dying) })
	t.Logf("released %v after the owner was killed", time.Since(killed))
	if d := time.Since(killed); d > 500*time.Millisecond { // not the idle wake-up (1 s): the owner's exit woke it
		t.Fatalf("released %v after its owner died, want within 0.5 s", d)
	}
	if _, ok, _ := j.Get(dying.ID); ok {
		t.Fatal("the released hold is still journaled")
	}
	if !held(living) {
		t.Fatal("the container of an owner that still runs was released")
	}
	if _, ok, _ := j.Get(living.ID); !ok {
		t.Fatal("the hold of an owner that still runs was removed")
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5 s waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

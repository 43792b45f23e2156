package lab

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRestartPolicyNext(t *testing.T) {
	p := RestartPolicy{Delay: 100 * time.Millisecond, MinRun: time.Second, Burst: 3, MaxDelay: time.Second}
	type step struct {
		ran       time.Duration
		wantDelay time.Duration
		wantShort int
	}
	short := 0
	for i, s := range []step{
		{5 * time.Second, 100 * time.Millisecond, 0},       // a long run: restarted after Delay
		{10 * time.Millisecond, 100 * time.Millisecond, 1}, // short runs within the burst: Delay
		{10 * time.Millisecond, 100 * time.Millisecond, 2},
		{10 * time.Millisecond, 100 * time.Millisecond, 3},
		{10 * time.Millisecond, 200 * time.Millisecond, 4}, // past the burst: doubling
		{10 * time.Millisecond, 400 * time.Millisecond, 5},
		{10 * time.Millisecond, 800 * time.Millisecond, 6},
		{10 * time.Millisecond, time.Second, 7}, // capped at MaxDelay
		{10 * time.Millisecond, time.Second, 8},
		{time.Second, 100 * time.Millisecond, 0}, // one run of MinRun resets
		{10 * time.Millisecond, 100 * time.Millisecond, 1},
	} {
		var d time.Duration
		d, short = p.Next(s.ran, short)
		if d != s.wantDelay || short != s.wantShort {
			t.Fatalf("step %d (ran %v): got delay %v, %d short runs; want %v, %d", i, s.ran, d, short, s.wantDelay, s.wantShort)
		}
	}
	if d := DefaultRestartPolicy(); d.Delay > time.Second || d.MaxDelay < d.Delay || d.Burst < 1 {
		t.Fatalf("default policy %+v: restarts must come within a second and back off only after a burst", d)
	}
}

// TestSuperviseRestartsAndStops runs a real child that exits at once: it is started
// again and again (with the policy's delays), and when the context ends, a running
// child gets SIGTERM and Supervise returns.
func TestSuperviseRestartsAndStops(t *testing.T) {
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	p := RestartPolicy{Delay: 10 * time.Millisecond, MinRun: time.Minute, Burst: 2, MaxDelay: 40 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, log, p, []string{"/bin/sh", "-c", "echo start >> " + starts + "; exit 3"})
	}()
	count := func(f string) int {
		b, _ := os.ReadFile(f)
		return strings.Count(string(b), "start")
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(starts) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("child started %d times in 10 s, want 5 (restarted after it exited)", count(starts))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Supervise: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Supervise still runs 5 s after its context ended")
	}

	// A long-running child is stopped with SIGTERM when the context ends.
	term := filepath.Join(dir, "term")
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		done <- Supervise(ctx, log, p, []string{"/bin/sh", "-c", "trap 'echo start > " + term + "; exit 0' TERM; echo start >> " + starts + "; while :; do sleep 0.05; done"})
	}()
	n := count(starts)
	deadline = time.Now().Add(10 * time.Second) // its own 10 s, not what the restarts above left
	for count(starts) == n {
		if time.Now().After(deadline) {
			t.Fatal("the long-running child did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Supervise: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Supervise still runs 15 s after its context ended")
	}
	if count(term) != 1 {
		t.Fatal("the child got no SIGTERM when the supervisor stopped")
	}
	if err := Supervise(context.Background(), log, p, nil); err == nil {
		t.Fatal("Supervise with no command: no error")
	}
}

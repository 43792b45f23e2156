package watchdog

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

func TestWakeAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	iv := 20 * time.Millisecond
	for _, c := range []struct {
		name     string
		next     time.Time
		notified bool
		want     time.Duration
	}{
		{"polling without inotify", now.Add(time.Hour), false, iv},
		{"idle: the safety net", time.Time{}, true, idleWait},
		{"a deadline ahead", now.Add(300 * time.Millisecond), true, 300 * time.Millisecond},
		{"a deadline further than the net", now.Add(time.Hour), true, idleWait},
		{"a deadline closer than the interval", now.Add(time.Millisecond), true, iv},
		{"a release that failed (deadline now): retry after the interval", now, true, iv},
	} {
		if got := wakeAfter(now, c.next, iv, c.notified); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRunReleasesAHoldAddedWhileIdle: a hold written while the watchdog sleeps its idle
// second is seen at once (inotify) and released right after its deadline, not at the
// next idle wake-up; then the watchdog exits when its journal directory is removed.
func TestRunReleasesAHoldAddedWhileIdle(t *testing.T) {
	j := Journal{Dir: t.TempDir() + "/journal"}
	if err := os.Mkdir(j.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fr, lk := freezer.NewFake(), netlock.NewFake()
	r := Releaser{Lock: lk, Freeze: fr, Owns: func(int, string) bool { return true }}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), j, 20*time.Millisecond) }()
	time.Sleep(100 * time.Millisecond) // the watchdog is now in its idle wait (not a sync: the test holds either way)
	c := container.Ref{ID: "c1", Name: "web", Pid: 42}
	ctx := context.Background()
	if err := fr.Freeze(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := lk.Lock(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	if err := j.Put(Hold{ContainerID: c.ID, Name: c.Name, Pid: c.Pid, Locked: true, Frozen: true, Deadline: deadline}); err != nil {
		t.Fatal(err)
	}
	for {
		frozen, _ := fr.Frozen(ctx, c)
		st, _ := lk.State(ctx, c)
		if !frozen && !st.Locked() {
			break
		}
		if time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatal("hold not released 2 s after its deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
	late := time.Since(deadline)
	if late < 0 {
		t.Fatalf("released %v before its deadline", -late)
	}
	if late > 500*time.Millisecond {
		t.Fatalf("released %v after its deadline: the watchdog missed the new hold and waited for its idle wake-up", late)
	}
	if err := os.RemoveAll(j.Dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("watchdog still running 3 s after its journal was removed")
	}
}

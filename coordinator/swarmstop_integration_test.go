package coordinator_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestIntegrationSwarmRestoreStopsFast: a swarm-mode restore stops the stack as an
// exact restore does (the tasks' containers killed through the agents once swarm
// ordered their shutdown), not gracefully: the sleeper's PID 1 (busybox sh without a
// SIGTERM trap) would cost the whole stop grace period (10 s). It also measures the
// graceful scale to 0 on the same stack for comparison.
func TestIntegrationSwarmRestoreStopsFast(t *testing.T) {
	tp := filepath.Join(repoRoot(), "build", "thirdparty")
	if _, err := os.Stat(filepath.Join(tp, "busybox.tar")); err != nil {
		t.Skipf("SKIP INTEGRATION: no %s/busybox.tar: run 'make images-thirdparty'", tp)
	}
	e := setupE2E(t)
	for i := 1; i <= 3; i++ { // not a project image: lab deploy does not load it
		if out, err := e.dockerCmd(e.node(i), "load", "-i", filepath.Join(tp, "busybox.tar")); err != nil {
			t.Fatalf("load busybox: %v: %s", err, out)
		}
	}
	yml := filepath.Join(e.dir, "sleeper.yml")
	if err := os.WriteFile(yml, []byte(sleeperYML), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, yml, "sleeper"); code != 0 {
		t.Fatalf("lab deploy sleeper: %s", out)
	}
	const svc = "sleeper_sleeper"
	waitLong(t, "sleeper 2/2", func() bool { return e.runningTasks(svc) == 2 })

	// For comparison: a graceful scale to 0 until no task runs (what the swarm-mode
	// restore's stop did before).
	t0 := time.Now()
	if out, err := e.dockerCmd(e.node(1), "service", "scale", "--detach", svc+"=0"); err != nil {
		t.Fatalf("scale to 0: %v: %s", err, out)
	}
	for e.runningTasks(svc) != 0 {
		if time.Since(t0) > time.Minute {
			t.Fatal("sleeper still runs a minute after scaling it to 0")
		}
		time.Sleep(100 * time.Millisecond)
	}
	graceful := time.Since(t0)
	if out, err := e.dockerCmd(e.node(1), "service", "scale", "--detach", svc+"=2"); err != nil {
		t.Fatalf("scale to 2: %v: %s", err, out)
	}
	waitLong(t, "sleeper 2/2 again", func() bool { return e.runningTasks(svc) == 2 })

	if out, code := e.ctl(2*time.Minute, "snapshot", "sleeper", "--id", "sleepswarm"); code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, out)
	}
	out, code := e.ctl(3*time.Minute, "restore", "sleepswarm", "--mode", "swarm")
	t.Logf("restore --mode swarm:\n%s", out)
	if code != 0 {
		t.Fatalf("restore --mode swarm: exit %d", code)
	}
	stopTransfer := -1
	if m := regexp.MustCompile(`stop_transfer:(\d+)`).FindStringSubmatch(out); m != nil {
		stopTransfer, _ = strconv.Atoi(m[1])
	}
	m := regexp.MustCompile(`\] stopped (\d+)ms`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no 'stopped' event in the restore's output (stop and copies took %d ms)", stopTransfer)
	}
	stop, _ := strconv.Atoi(m[1])
	t.Logf("STOP TIMES (swarm mode): graceful scale to 0 %.1f s; restore's stop %.2f s (stop and copies %.2f s)",
		graceful.Seconds(), float64(stop)/1000, float64(stopTransfer)/1000)
	fmt.Printf("SWARM STOP TIMES: graceful=%dms restore-stop=%dms stop_transfer=%dms\n", graceful.Milliseconds(), stop, stopTransfer)
	// The grace period is 10 s: a stop under 5 s did not wait for it.
	if time.Duration(stop)*time.Millisecond > 5*time.Second {
		t.Errorf("the swarm-mode restore's stop took %d ms: the tasks were stopped gracefully, not killed", stop)
	}
	waitLong(t, "restored sleeper 2/2", func() bool { return e.runningTasks(svc) == 2 })
}

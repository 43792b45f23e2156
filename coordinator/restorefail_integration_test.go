package coordinator_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// sleeperYML: a stack whose PID 1 (busybox sh, no SIGTERM trap) ignores SIGTERM, as
// the shell-wrapped clients of deploy/examples/redis.yml do: a graceful stop costs the
// whole stop grace period (10 s).
const sleeperYML = `version: "3.8"
services:
  sleeper:
    image: swarmckpt-thirdparty/busybox:deb
    entrypoint: ["/bin/sh", "-c"]
    command: ["i=0; while :; do i=$$((i + 1)); echo $$i; sleep 1; done"]
    networks: [net]
    deploy:
      endpoint_mode: dnsrr
      replicas: 2
      restart_policy:
        condition: any
      labels:
        swarmckpt.enable: "true"
networks:
  net:
    driver: overlay
    attachable: true
    ipam:
      config:
        - subnet: 10.240.9.0/24
`

func (e *e2e) dockerCmd(node string, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.docker(node))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// runningTasks counts the service's tasks swarm reports Running (whatever their
// desired state: a task being stopped still runs).
func (e *e2e) runningTasks(service string) int {
	out, err := e.dockerCmd(e.name+"-1", "service", "ps", service, "--format", "{{.CurrentState}}")
	if err != nil {
		return -1
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Running") {
			n++
		}
	}
	return n
}

// TestIntegrationRestoreFailurePutsTheStackBack: first a swarm-mode migration to the
// target whose image is swapped (below) fails there and is rolled back as swarm tasks
// (swarmMigrateFailsAndRollsBack). Then an exact restore that passes the
// pre-flight but fails in CRIU after the stack was stopped (on the target node the
// image's tag points at another image: present, so the pre-flight passes, but the files
// the processes had are not there) puts the stack back as it ran, with its state: the
// restore checkpointed it first, and its containers run again on their own nodes,
// counting on from where they were (they used to be started fresh, counting from 1).
// It keeps CRIU's log on the node (mode 0600) and names it in the error. It also
// measures stopping the stack: a graceful scale to 0 (what restore did before) against
// the restore's stop, which kills the tasks' containers.
func TestIntegrationRestoreFailurePutsTheStackBack(t *testing.T) {
	tp := filepath.Join(repoRoot(), "build", "thirdparty")
	if _, err := os.Stat(filepath.Join(tp, "busybox.tar")); err != nil {
		t.Skipf("SKIP INTEGRATION: no %s/busybox.tar: run 'make images-thirdparty'", tp)
	}
	e := setupE2E(t)
	yml := filepath.Join(e.dir, "sleeper.yml")
	if err := os.WriteFile(yml, []byte(sleeperYML), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ { // not a project image: lab deploy does not load it
		if out, err := e.dockerCmd(fmt.Sprintf("%s-%d", e.name, i), "load", "-i", filepath.Join(tp, "busybox.tar")); err != nil {
			t.Fatalf("load busybox: %v: %s", err, out)
		}
	}
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, yml, "sleeper"); code != 0 {
		t.Fatalf("lab deploy sleeper: %s", out)
	}
	const svc = "sleeper_sleeper"
	waitLong(t, "sleeper 2/2", func() bool { return e.runningTasks(svc) == 2 })

	// Before: a graceful scale to 0, waiting until no task runs (the old StopStack).
	t0 := time.Now()
	if out, err := e.dockerCmd(e.name+"-1", "service", "scale", "--detach", svc+"=0"); err != nil {
		t.Fatalf("scale to 0: %v: %s", err, out)
	}
	for e.runningTasks(svc) != 0 {
		if time.Since(t0) > time.Minute {
			t.Fatal("sleeper still runs a minute after scaling it to 0")
		}
		time.Sleep(100 * time.Millisecond)
	}
	graceful := time.Since(t0)
	if out, err := e.dockerCmd(e.name+"-1", "service", "scale", "--detach", svc+"=2"); err != nil {
		t.Fatalf("scale to 2: %v: %s", err, out)
	}
	waitLong(t, "sleeper 2/2 again", func() bool { return e.runningTasks(svc) == 2 })

	out, code := e.ctl(2*time.Minute, "snapshot", "sleeper", "--id", "sleepfail")
	if code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, out)
	}
	// The target (whose image is swapped below) must not run a sleeper: the stack is
	// put back on the sleepers' own nodes, which must still have the real image.
	target := ""
	tasksAt, _ := e.dockerCmd(e.name+"-1", "service", "ps", svc, "--filter", "desired-state=running", "--format", "{{.Node}}")
	for i := 3; i >= 1 && target == ""; i-- {
		if n := fmt.Sprintf("%s-%d", e.name, i); !strings.Contains(tasksAt, n) {
			target = n
		}
	}
	if target == "" {
		t.Fatalf("every node runs a sleeper (%q): no node to make the restore fail on", tasksAt)
	}
	const img = "swarmckpt-thirdparty/busybox:deb"
	orig, err := e.dockerCmd(target, "image", "inspect", "-f", "{{.Id}}", img)
	if err != nil {
		t.Fatalf("inspect %s on %s: %v: %s", img, target, err, orig)
	}
	if out, err := e.dockerCmd(target, "tag", "swarmckpt/echo:dev", img); err != nil {
		t.Fatalf("retag on %s: %v: %s", target, err, out)
	}
	retagged := true
	putBack := func() {
		if retagged {
			if out, err := e.dockerCmd(target, "tag", orig, img); err != nil {
				t.Errorf("put %s back on %s: %v: %s", img, target, err, out)
			}
			retagged = false
		}
	}
	t.Cleanup(putBack)

	e.swarmMigrateFailsAndRollsBack(t, svc, target)

	out, code = e.ctl(3*time.Minute, "restore", "sleepfail", "--node", svc+".1="+target, "--node", svc+".2="+target)
	putBack() // the services' fresh tasks need the real image
	t.Logf("restore (made to fail):\n%s", out)
	if code == 0 {
		t.Fatal("restore succeeded although the target's image was swapped")
	}
	for _, want := range []string{"put back as it was", "checkpointing the 2 running containers"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore error does not say %q", want)
		}
	}
	m := regexp.MustCompile(`(/\S+\.failed-restore\.log)`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("restore error names no kept CRIU log (<set>.failed-restore.log)")
	} else if fi, err := os.Stat(m[1]); err != nil {
		t.Errorf("kept CRIU log: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("kept CRIU log %s has mode %v, want 0600", m[1], fi.Mode().Perm())
	} else if b, _ := os.ReadFile(m[1]); !strings.Contains(string(b), "Error") {
		t.Errorf("kept CRIU log %s has no error line", m[1])
	}
	if sm := regexp.MustCompile(`stopped (\d+)ms`).FindStringSubmatch(out); sm != nil {
		ms, _ := strconv.Atoi(sm[1])
		t.Logf("STOP TIMES: graceful scale to 0 %.1fs; restore's stop (tasks killed) %.1fs", graceful.Seconds(), float64(ms)/1000)
		fmt.Printf("STOP TIMES: graceful=%dms restore-stop=%dms\n", graceful.Milliseconds(), ms)
	} else {
		t.Errorf("no 'stopped' event in the restore's output")
	}
	for _, f := range []string{"coordinator", "worker-" + e.name + "-1", "worker-" + e.name + "-2", "worker-" + e.name + "-3"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, f+".log"))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "kill") || strings.Contains(l, "container removed") {
				t.Logf("%s: %s", f, l)
			}
		}
	}
	// Both sleepers run again (standalone, on their nodes), counting on: the first
	// number each prints after the put-back continues its count (a fresh start prints 1).
	var counts []int
	waitLong(t, "both sleepers running again, counting on", func() bool {
		counts = e.sleeperFirstCounts("")
		return len(counts) == 2
	})
	for _, v := range counts {
		if v <= 1 { // fresh from the image: the count starts at 1
			t.Errorf("a put-back sleeper printed %d first: started fresh, not from its checkpoint (counts %v)", v, counts)
		}
	}
	t.Logf("put-back sleepers continued at %v", counts)
	if r := e.runningTasks(svc); r != 0 {
		t.Errorf("service %s runs %d swarm tasks besides the put-back containers, want 0", svc, r)
	}
	e.directMigrateFailsAndRollsBack(t, target, img, orig, counts)
}

// directMigrateFailsAndRollsBack: a `migrate --copy direct --to target` of the sleepers
// (standalone, put back by the step before) whose restore fails in CRIU on target
// (img's tag swapped there again) rolls back from the target's sets, the snapshot's
// only copies: the sleepers run again on their own nodes counting on past after (their
// counts before), the target keeps the sets, and the record gets their page digests
// (the target hashed them after the failed restore; the rollback's transfer waited
// for that hash).
func (e *e2e) directMigrateFailsAndRollsBack(t *testing.T, target, img, orig string, after []int) {
	t.Helper()
	if out, err := e.dockerCmd(target, "tag", "swarmckpt/echo:dev", img); err != nil {
		t.Fatalf("retag on %s: %v: %s", target, err, out)
	}
	defer func() {
		if out, err := e.dockerCmd(target, "tag", orig, img); err != nil {
			t.Errorf("put %s back on %s: %v: %s", img, target, err, out)
		}
	}()
	hashed := e.workerLogCount("received pages hashed after the restore")
	out, code := e.ctl(5*time.Minute, "migrate", "sleeper", "--to", target, "--copy", "direct")
	t.Logf("migrate --copy direct (made to fail):\n%s", out)
	if code == 0 {
		t.Fatal("migrate --copy direct succeeded although the target's image was swapped")
	}
	if !strings.Contains(out, "put back where they were, with their state") {
		t.Errorf("direct migrate error does not say the sleepers were put back with their state")
	}
	var counts []int
	waitLong(t, "both sleepers running again after the failed direct migration, counting on", func() bool {
		counts = e.sleeperFirstCounts(target)
		return len(counts) == 2
	})
	lowest := slices.Min(after)
	for _, v := range counts {
		if v <= lowest {
			t.Errorf("a sleeper put back by the direct rollback printed %d first, not past its count before (%v): started from an older state (counts %v)", v, after, counts)
		}
	}
	t.Logf("sleepers put back by the direct rollback continued at %v (before: %v)", counts, after)
	lsOut, code := e.ctl(20*time.Second, "ls", "sleeper", "--output", "json")
	var hs []store.Manifest
	if err := json.Unmarshal([]byte(lsOut), &hs); code != 0 || err != nil || len(hs) == 0 {
		t.Fatalf("ls sleeper: exit %d %v\n%s", code, err, lsOut)
	}
	id := hs[len(hs)-1].ID
	waitLong(t, "the failed direct migration's page digests recorded", func() bool {
		m := e.manifest(id)
		for _, c := range m.Containers {
			if !c.Direct || c.Images == nil || c.Images.Node != target || c.Images.PagesPending || c.Images.PagesUnverified != "" {
				return false
			}
		}
		return len(m.Containers) > 0
	})
	if n := e.workerLogCount("received pages hashed after the restore") - hashed; n < 1 {
		t.Errorf("no late hash logged on %s for the failed direct migration's sets", target)
	}
}

// swarmMigrateFailsAndRollsBack: a `migrate --mode swarm --to target` of the sleeper
// stack (2 swarm tasks, none on target) fails on target, whose image behind the tag is
// another one (the runtime wrapper's restore fails in CRIU), after the stop. The
// rollback puts the migration's snapshot back as swarm tasks where they ran: the
// service at its 2 replicas again, no task on target (kept off it for the put-back),
// no placement constraint left, and each sleeper counting on from its checkpoint (it
// used to come back as standalone containers, the service left at 0).
func (e *e2e) swarmMigrateFailsAndRollsBack(t *testing.T, svc, target string) {
	t.Helper()
	t0 := time.Now()
	out, code := e.ctl(5*time.Minute, "migrate", "sleeper", "--to", target, "--mode", "swarm", "--whole-stack")
	took := time.Since(t0)
	t.Logf("migrate --mode swarm --to %s (made to fail, %s):\n%s", target, took.Round(time.Millisecond), out)
	if code == 0 {
		t.Fatalf("migrate --mode swarm to %s succeeded although its image was swapped", target)
	}
	if took > 90*time.Second { // the failed task is seen at once (FailedTasks), not at swarm's retry or the 2-minute task timeout
		t.Errorf("the failing swarm-mode migration took %s to roll back, want well under the 2-minute task timeout", took.Round(time.Second))
	}
	if !strings.Contains(out, "originals restored where they were, as swarm tasks") {
		t.Errorf("migrate error does not say the stack was put back as swarm tasks")
	}
	waitLong(t, "sleeper 2/2 as swarm tasks after the rollback", func() bool { return e.runningTasks(svc) == 2 })
	if c, err := e.dockerCmd(e.name+"-1", "service", "inspect", "-f", "{{.Spec.TaskTemplate.Placement}}", svc); err != nil || strings.Contains(c, "node.hostname") {
		t.Errorf("placement of %s after the rollback: %q (%v), want no node.hostname constraint left", svc, c, err)
	}
	var counts []int
	waitLong(t, "both put-back sleeper tasks counting on", func() bool {
		counts = counts[:0]
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("%s-%d", e.name, i)
			ids, err := e.dockerCmd(node, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+svc)
			if err != nil {
				continue
			}
			for _, id := range strings.Fields(ids) {
				if node == target {
					t.Errorf("put-back task container %s runs on %s, the failed migration's target", id, node)
				}
				logs, err := e.dockerCmd(node, "logs", id)
				if f := strings.Fields(logs); err == nil && len(f) > 0 {
					if v, err := strconv.Atoi(f[0]); err == nil {
						counts = append(counts, v)
					}
				}
			}
		}
		return len(counts) == 2
	})
	for _, v := range counts {
		if v <= 1 {
			t.Errorf("a put-back sleeper task printed %d first: started fresh, not from the migration's snapshot (counts %v)", v, counts)
		}
	}
	t.Logf("swarm-mode rollback: sleeper tasks continued at %v", counts)
	if c, err := e.dockerCmd(e.name+"-1", "service", "ps", svc, "--filter", "desired-state=running", "--format", "{{.Node}}"); err != nil || strings.Contains(c, target) {
		t.Errorf("running tasks of %s on %q (%v): want none on %s", svc, c, err, target)
	}
}

// sleeperFirstCounts returns the first number each running sleeper container printed,
// on every node but skip (a fresh start prints 1; a restored one continues its count).
func (e *e2e) sleeperFirstCounts(skip string) []int {
	var counts []int
	for i := 1; i <= 3; i++ {
		node := fmt.Sprintf("%s-%d", e.name, i)
		if node == skip {
			continue
		}
		names, err := e.dockerCmd(node, "ps", "--filter", "name=sleeper_sleeper-", "--format", "{{.Names}}")
		if err != nil {
			continue
		}
		for _, n := range strings.Fields(names) {
			logs, err := e.dockerCmd(node, "logs", n)
			if f := strings.Fields(logs); err == nil && len(f) > 0 {
				if v, err := strconv.Atoi(f[0]); err == nil {
					counts = append(counts, v)
				}
			}
		}
	}
	return counts
}

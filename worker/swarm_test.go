package worker_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

// TestSwarmTaskRestoredAsTask: a swarm service's task container is dumped (it exits, so
// swarm starts a replacement task); the set was placed for the service slot on that node,
// so the runtime wrapper restores the replacement from it: the task continues counting
// from the checkpoint and stays a task swarm supervises.
func TestSwarmTaskRestoredAsTask(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	mgr, n2 := nodes[0], nodes[1]
	host, err := n2.Docker("info", "--format", "{{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n2.Docker("info", "--format", "{{.DefaultRuntime}}"); err != nil || out != "swarmckpt" {
		t.Skipf("SKIPPED LOUDLY: node %s's default runtime is %q, not swarmckpt (swarm tasks use the default runtime)", n2.Host, out)
	}
	svc := fmt.Sprintf("dpsvc%d", time.Now().UnixNano()%100000)
	if _, err := mgr.Docker("service", "create", "--detach", "--name", svc, "--no-resolve-image",
		"--constraint", "node.hostname=="+host, "--restart-delay", "3s", dockertest.Image, "counter"); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot create a swarm service on %s (needs a lab manager): %v", mgr.Host, err)
	}
	t.Cleanup(func() { _, _ = mgr.Docker("service", "rm", svc) })
	taskContainer := func(not string) string {
		for i := 0; i < 300; i++ {
			out, _ := n2.Docker("ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name="+svc)
			for _, id := range strings.Fields(out) {
				if id != not {
					return id
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no running task container of %s on %s", svc, host)
		return ""
	}
	old := taskContainer("")
	n2.WaitLog(t, old, 20*time.Second, "counting", func(l string) bool { return strings.Contains(l, "count 10\n") })
	b, _, _ := daemon(t, n2, "swarm-b")
	ctx := dockertest.Context(t, 2*time.Minute)
	set := svc + ".set"
	m, err := b.Dump(ctx, old, set, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Service != svc || m.Spec.Slot != 1 {
		t.Fatalf("manifest spec service %q slot %d", m.Spec.Service, m.Spec.Slot)
	}
	lastOld := lastCount(n2.MustDocker(t, "logs", old))
	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Service: svc, Slot: 1}); err != nil {
		t.Fatal(err)
	}
	fresh := taskContainer(old)
	logs := n2.WaitLog(t, fresh, 30*time.Second, "counting after restore", func(l string) bool { return strings.Contains(l, "count ") })
	first, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(logs), "\n", 2)[0], "count "))
	if first <= lastOld || first > lastOld+5 {
		t.Fatalf("replacement task started at count %d; the checkpoint was at %d: not restored from it", first, lastOld)
	}
	// The manager learns the task's state from the node asynchronously: poll.
	var st string
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, _ = mgr.Docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", svc)
		if strings.HasPrefix(st, "Running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swarm does not see the restored task running after 30s: %q", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

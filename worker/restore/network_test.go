package restore_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// TestOverlayLeavesWorkerNodeBetweenCreateAndStart: on a swarm worker node, the last
// container on an attachable overlay leaves between the restore's docker create and
// docker start (as when restore scales the stack's tasks to 0), so the node drops the
// overlay. The restore must still succeed, on its address, with the extra aliases.
func TestOverlayLeavesWorkerNodeBetweenCreateAndStart(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	mgr, wk := nodes[0], nodes[1]
	if out, _ := wk.Docker("info", "--format", "{{.Swarm.ControlAvailable}}"); strings.TrimSpace(out) != "false" {
		t.Skipf("SKIPPED LOUDLY: %s is not a swarm worker node (use a lab: its second node is a worker)", wk.Host)
	}
	const net = "dpvanish"
	if _, err := mgr.Docker("network", "inspect", net); err != nil {
		if _, err := mgr.Docker("network", "create", "-d", "overlay", "--attachable", "--subnet", "10.232.11.0/24", net); err != nil {
			t.Skipf("SKIPPED LOUDLY: cannot create an attachable overlay on %s (needs a swarm manager): %v", mgr.Host, err)
		}
	}
	sfx := time.Now().UnixNano() % 100000
	src, anchor, name := fmt.Sprintf("dpvanish-src-%d", sfx), fmt.Sprintf("dpvanish-anchor-%d", sfx), fmt.Sprintf("dpvanish-r-%d", sfx)
	ip := fmt.Sprintf("10.232.11.%d", 10+sfx%200)
	for _, c := range []string{src, anchor, name} {
		t.Cleanup(func() { _, _ = wk.Docker("rm", "-f", c) })
	}
	wk.Run(t, anchor, "--network", net, dockertest.Image, "counter")
	wk.Run(t, src, "--network", net, "--ip", ip, dockertest.Image, "counter")
	wk.WaitLog(t, src, 10*time.Second, "counting", func(l string) bool { return strings.Contains(l, "count 2\n") })
	cli, err := container.DialDocker(wk.Host)
	if err != nil {
		t.Fatal(err)
	}
	ctx := dockertest.Context(t, 2*time.Minute)
	insp := container.NewDocker(cli)
	ref, err := insp.Resolve(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := insp.Spec(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	set := filepath.Join(wk.DataRoot, "swarmckpt", "test-sets", fmt.Sprint(src, "-", time.Now().UnixNano()))
	if _, err := (&dump.Runc{Root: wk.RuncRoot()}).Dump(ctx, ref, spec, set, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	wk.MustDocker(t, "rm", "-f", src)
	v, err := imageset.Check(set)
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	r := &restore.Docker{Cli: cli, DataRoot: wk.DataRoot}
	got, err := r.Restore(ctx, v, restore.Options{Name: name, Runtime: "swarmckpt", NetworkLock: true,
		Aliases: map[string][]string{net: {"short"}},
		Created: func(c container.Ref) error {
			created++
			if created > 1 {
				return nil
			}
			// The last other container leaves: the worker node drops the overlay.
			wk.MustDocker(t, "rm", "-f", anchor)
			for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if out, _ := wk.Docker("network", "ls", "-q", "--filter", "name=^"+net+"$"); strings.TrimSpace(out) == "" {
					return nil
				}
			}
			t.Logf("the overlay stayed on %s after its last other container left (the created container keeps it)", wk.Host)
			return nil
		}})
	if err != nil {
		t.Fatalf("restore after the overlay left the node (attempts %d): %v", created, err)
	}
	t.Logf("restored in %d attempt(s)", created)
	out := wk.MustDocker(t, "inspect", "-f", "{{.State.Running}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{json .Aliases}}{{end}}", got.ID)
	if !strings.HasPrefix(out, "true "+ip+" ") || !strings.Contains(out, `"short"`) {
		t.Fatalf("restored container: %q, want running on %s with alias short", out, ip)
	}
	// The source was never locked: the lock table in the restored namespace is the one
	// the runtime installed before CRIU restored the sockets (NetworkLock).
	if out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(got.Pid)+"/ns/net", "nft", "list", "table", "inet", netlock.Table).CombinedOutput(); err != nil {
		t.Fatalf("no lock table in the restored container (pid %d) after a locked restore: %v: %s", got.Pid, err, out)
	}
	// It was restored (continues counting), not started fresh.
	logs := wk.MustDocker(t, "logs", got.ID)
	if strings.Contains(logs, "count 1\n") {
		t.Fatalf("started fresh instead of restored:\n%s", logs)
	}
	if ids := strings.Fields(wk.MustDocker(t, "ps", "-q", "--no-trunc", "--filter", "name="+name)); !slices.Contains(ids, got.ID) {
		t.Fatalf("restored container %s not listed: %v", got.ID, ids)
	}
}

package dump_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

func runningRef(t *testing.T, node dockertest.Node, name string, args ...string) (container.Ref, container.Spec) {
	t.Helper()
	node.Run(t, name, args...)
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	insp := container.NewDocker(cli)
	ctx := context.Background()
	var ref container.Ref
	for i := 0; i < 100; i++ {
		if ref, err = insp.Resolve(ctx, name); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	spec, err := insp.Spec(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return ref, spec
}

func assertGone(t *testing.T, set string) {
	t.Helper()
	if _, err := os.Stat(set); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed dump left %s behind", set)
	}
}

func assertRunning(t *testing.T, node dockertest.Node, name string) {
	t.Helper()
	if st := node.MustDocker(t, "inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("%s is %s after the failed dump, want running", name, st)
	}
}

// TestCRIUFailureNamesTheCause: an MPTCP socket is a resource CRIU cannot dump.
func TestCRIUFailureNamesTheCause(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	name := "dpfault-mptcp"
	ref, spec := runningRef(t, node, name, "-e", "TESTIMG_MPTCP=1", dockertest.Image, "echo-server", ":7000")
	node.WaitLog(t, name, 10*time.Second, "listening", func(l string) bool { return strings.Contains(l, "listening") })
	set := filepath.Join(t.TempDir(), "set")
	_, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(context.Background(), ref, spec, set, dump.Options{})
	if !errors.Is(err, dump.ErrCRIU) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "MPTCP") {
		t.Fatalf("err = %v; want ErrCRIU naming %s and MPTCP", err, name)
	}
	assertGone(t, set)
	assertRunning(t, node, name)
}

// TestDiskFull: the image directory's filesystem fills up mid-dump.
func TestDiskFull(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	name := "dpfault-diskfull"
	ref, spec := runningRef(t, node, name, dockertest.Image, "memhog", "32")
	node.WaitLog(t, name, 20*time.Second, "memory filled", func(l string) bool { return strings.Contains(l, "sum ") })
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot mount a small tmpfs to fill: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	set := filepath.Join(mnt, "set")
	_, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(context.Background(), ref, spec, set, dump.Options{})
	if !errors.Is(err, dump.ErrCRIU) || !strings.Contains(err.Error(), name) {
		t.Fatalf("err = %v; want ErrCRIU naming %s", err, name)
	}
	t.Logf("disk full error: %v", err)
	assertGone(t, set)
	assertRunning(t, node, name)
}

// TestContainerExitsMidDump: the container is killed while CRIU dumps it. Whatever wins
// the race, the result is either a complete, verified set or an error and no set.
func TestContainerExitsMidDump(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	name := "dpfault-exit"
	ref, spec := runningRef(t, node, name, dockertest.Image, "memhog", "256")
	node.WaitLog(t, name, 30*time.Second, "memory filled", func(l string) bool { return strings.Contains(l, "sum ") })
	set := filepath.Join(t.TempDir(), "set")
	go func() {
		time.Sleep(30 * time.Millisecond)
		_, _ = node.Docker("kill", name)
	}()
	_, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(context.Background(), ref, spec, set, dump.Options{LeaveRunning: true})
	if err != nil {
		t.Logf("dump lost the race (expected most of the time): %v", err)
		if !errors.Is(err, dump.ErrCRIU) || !strings.Contains(err.Error(), name) {
			t.Fatalf("err = %v; want ErrCRIU naming %s", err, name)
		}
		assertGone(t, set)
		return
	}
	t.Log("dump finished before the kill")
	if _, err := os.Stat(filepath.Join(set, "manifest.json")); err != nil {
		t.Fatalf("successful dump without manifest: %v", err)
	}
	_ = fmt.Sprint()
}

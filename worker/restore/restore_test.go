package restore_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/restore/restoretest"
)

var seq atomic.Int64

func TestFakeConformance(t *testing.T) {
	f := restore.NewFake(t.TempDir(), "img")
	ip := 10
	restoretest.Run(t, restoretest.Env{
		Restorer: f,
		Set: func(t *testing.T, leaveRunning bool, mutate func(*container.Spec)) imageset.Verified {
			spec := container.Spec{Image: "img", Networks: []container.Network{{Name: "n", IPv4: fmt.Sprint("10.0.0.", ip)}}}
			if leaveRunning {
				// The source keeps its address: register it as held on the fake node.
				held := spec
				held.Name = fmt.Sprint("src", ip)
				hv := fakeSet(t, held, nil)
				if _, err := f.Restore(context.Background(), hv, restore.Options{}); err != nil {
					t.Fatal(err)
				}
			} else {
				ip++
			}
			return fakeSet(t, spec, mutate)
		},
		Exists: func(t *testing.T, name string) bool { return f.Exists(name) },
		Name:   func(t *testing.T) string { return fmt.Sprint("r", seq.Add(1)) },
	})
}

func fakeSet(t *testing.T, spec container.Spec, mutate func(*container.Spec)) imageset.Verified {
	if mutate != nil {
		mutate(&spec)
	}
	set := filepath.Join(t.TempDir(), "set")
	if _, err := (dump.Fake{}).Dump(context.Background(), container.Ref{ID: "x", Pid: 1}, spec, set, dump.Options{}); err != nil {
		t.Fatal(err)
	}
	v, err := imageset.Check(set)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDockerConformance runs the suite on a real node with the runtime wrapper
// registered as runtime "swarmckpt" (lab nodes; see docs/restore.md).
func TestDockerConformance(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := node.Docker("info", "--format", "{{json .Runtimes}}"); !strings.Contains(out, `"swarmckpt"`) {
		t.Skipf("SKIPPED LOUDLY: node %s has no runtime \"swarmckpt\" (install swarmckpt-runtime and register it in daemon.json)", node.Host)
	}
	const net = "dptest-restore"
	if _, err := node.Docker("network", "inspect", net); err != nil {
		node.MustDocker(t, "network", "create", "--attachable", "--subnet", "10.232.7.0/24", net)
	}
	insp := container.NewDocker(cli)
	r := &restore.Docker{Cli: cli, DataRoot: node.DataRoot}
	setsDir := filepath.Join(node.DataRoot, "swarmckpt", "test-sets")
	var ip atomic.Int64
	ip.Store(10)
	restoretest.Run(t, restoretest.Env{
		Restorer: runtimeRestorer{r},
		Set: func(t *testing.T, leaveRunning bool, mutate func(*container.Spec)) imageset.Verified {
			name := fmt.Sprintf("dprestore-src-%d", seq.Add(1))
			node.Run(t, name, "--network", net, "--ip", fmt.Sprint("10.232.7.", ip.Add(1)), dockertest.Image, "counter")
			node.WaitLog(t, name, 10*time.Second, "counting", func(l string) bool { return strings.Contains(l, "count 1\n") })
			ctx := context.Background()
			ref, err := insp.Resolve(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := insp.Spec(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if mutate != nil {
				mutate(&spec)
			}
			set := filepath.Join(setsDir, fmt.Sprint(name, "-", time.Now().UnixNano()))
			if _, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(ctx, ref, spec, set, dump.Options{LeaveRunning: leaveRunning}); err != nil {
				t.Fatal(err)
			}
			v, err := imageset.Check(set)
			if err != nil {
				t.Fatal(err)
			}
			if !leaveRunning {
				// The source exited with the dump; free its name and address.
				node.MustDocker(t, "rm", "-f", name)
			}
			return v
		},
		Layer: func(t *testing.T) (imageset.Verified, func(*testing.T, string)) {
			name := fmt.Sprintf("dprestore-layer-%d", seq.Add(1))
			node.Run(t, name, dockertest.Image, "filewriter", "/var/lib/app")
			node.WaitLog(t, name, 10*time.Second, "writing", func(l string) bool { return strings.Contains(l, "wrote 3\n") })
			ctx := context.Background()
			ref, err := insp.Resolve(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := insp.Spec(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			set := filepath.Join(setsDir, fmt.Sprint(name, "-", time.Now().UnixNano()))
			if _, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(ctx, ref, spec, set, dump.Options{}); err != nil {
				t.Fatal(err)
			}
			v, err := imageset.Check(set)
			if err != nil {
				t.Fatal(err)
			}
			dumped := catFile(t, node, name, "/var/lib/app/db")
			node.MustDocker(t, "rm", "-f", name) // and with it, its writable layer
			return v, func(t *testing.T, restored string) {
				node.WaitLog(t, restored, 10*time.Second, "writing after the restore", func(l string) bool { return strings.Contains(l, "wrote ") })
				if got := catFile(t, node, restored, "/var/lib/app/db"); !strings.HasPrefix(got, dumped) {
					t.Fatalf("restored /var/lib/app/db = %q, want it to start with the dumped %q", got, dumped)
				}
				if _, err := node.Docker("cp", restored+":/etc/image-file", "-"); err == nil {
					t.Fatal("/etc/image-file, deleted before the dump, is back")
				}
			}
		},
		Exists: func(t *testing.T, name string) bool { _, err := node.Docker("inspect", name); return err == nil },
		Name: func(t *testing.T) string {
			n := fmt.Sprintf("dprestore-%d", seq.Add(1))
			t.Cleanup(func() { _, _ = node.Docker("rm", "-f", n) })
			return n
		},
	})
}

// runtimeRestorer forces the "swarmckpt" runtime on nodes whose default is runc.
type runtimeRestorer struct{ r *restore.Docker }

func (rr runtimeRestorer) Restore(ctx context.Context, v imageset.Verified, o restore.Options) (container.Ref, error) {
	o.Runtime = "swarmckpt"
	return rr.r.Restore(ctx, v, o)
}

func (rr runtimeRestorer) Remove(ctx context.Context, c string) error { return rr.r.Remove(ctx, c) }

// catFile reads one file of a container (running or stopped) through docker cp.
func catFile(t *testing.T, node dockertest.Node, name, path string) string {
	t.Helper()
	out, err := node.Docker("cp", name+":"+path, "-")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(strings.NewReader(out))
	if _, err := tr.Next(); err != nil {
		t.Fatalf("docker cp %s:%s: %v", name, path, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

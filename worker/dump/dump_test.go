package dump_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/dump/dumptest"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

var seq atomic.Int64

func TestFakeConformance(t *testing.T) {
	dumptest.Run(t, dump.Fake{}, func(t *testing.T) (container.Ref, container.Spec) {
		n := seq.Add(1)
		return container.Ref{ID: fmt.Sprint("c", n), Pid: int(n)}, container.Spec{Image: "img"}
	})
}

func TestRuncConformance(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	insp := container.NewDocker(cli)
	dumptest.Run(t, &dump.Runc{Root: node.RuncRoot()}, func(t *testing.T) (container.Ref, container.Spec) {
		name := fmt.Sprintf("dumptest-%d", seq.Add(1))
		node.Run(t, name, dockertest.Image, "counter")
		ctx := context.Background()
		ref, err := insp.Resolve(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := insp.Spec(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ref, spec
	})
}

// TestLeaveRunningKeepsCounting: a leave-running dump does not disturb the counter.
func TestLeaveRunningKeepsCounting(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	insp := container.NewDocker(cli)
	name := "dumptest-leave-running"
	node.Run(t, name, dockertest.Image, "counter")
	last := func(logs string) int {
		lines := strings.Split(strings.TrimSpace(logs), "\n")
		n, _ := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "count "))
		return n
	}
	logs := node.WaitLog(t, name, 10*time.Second, "first count", func(l string) bool { return strings.Contains(l, "count 2\n") })
	ctx := context.Background()
	ref, err := insp.Resolve(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := insp.Spec(ctx, name)
	if _, err := (&dump.Runc{Root: node.RuncRoot()}).Dump(ctx, ref, spec, t.TempDir()+"/set", dump.Options{LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	before := last(logs)
	logs = node.WaitLog(t, name, 10*time.Second, "counting on after the dump", func(l string) bool { return last(l) >= before+10 })
	// No gap and no restart: every number appears once, in order.
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line != fmt.Sprintf("count %d", i) {
			t.Fatalf("line %d is %q: the counter was disturbed", i, line)
		}
	}
	if st := node.MustDocker(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name); st != "running 0" {
		t.Fatalf("container state after leave-running dump: %s", st)
	}
}

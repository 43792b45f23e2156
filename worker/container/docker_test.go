package container_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

func TestDockerResolveAndSpec(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	d := container.NewDocker(cli)
	ctx := context.Background()
	if _, err := d.Resolve(ctx, "swarmckpt-no-such-container"); !errors.Is(err, container.ErrNotFound) || !strings.Contains(err.Error(), "swarmckpt-no-such-container") {
		t.Fatalf("unknown container: %v", err)
	}
	name := "dpinspect"
	node.Run(t, name, "-e", "A=1", "--label", "x=y", dockertest.Image, "counter")
	node.WaitLog(t, name, 10*time.Second, "running", func(l string) bool { return strings.Contains(l, "count 0") })
	ref, err := d.Resolve(ctx, name)
	if err != nil || ref.Pid <= 0 || ref.Name != name {
		t.Fatalf("resolve: %+v %v", ref, err)
	}
	s, err := d.Spec(ctx, name)
	if err != nil || s.Image != dockertest.Image || s.Labels["x"] != "y" || len(s.Cmd) != 1 || s.Cmd[0] != "counter" || len(s.Networks) == 0 {
		t.Fatalf("spec: %+v %v", s, err)
	}
	node.MustDocker(t, "stop", "-t", "0", name)
	if _, err := d.Resolve(ctx, name); !errors.Is(err, container.ErrNotRunning) {
		t.Fatalf("stopped container: %v", err)
	}
}

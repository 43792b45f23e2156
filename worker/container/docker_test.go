package container_test

import (
	"context"
	"errors"
	"reflect"
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

// TestDockerSpecRecreatesSettings: a container run with the runtime settings of a
// third-party service, read back by Docker.Spec and created again from
// Spec.CreateConfig (as an exact restore does), shows the same settings in docker
// inspect, field by field.
func TestDockerSpecRecreatesSettings(t *testing.T) {
	node := dockertest.Nodes(t, 1)[0]
	cli, err := container.DialDocker(node.Host)
	if err != nil {
		t.Fatal(err)
	}
	d := container.NewDocker(cli)
	ctx := context.Background()
	name := "dpsettings"
	node.Run(t, name, "--init", "-p", "127.0.0.1:16390:8080/tcp", "--expose", "9000/udp",
		"--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "0.5", "--cpu-shares", "512",
		"--pids-limit", "64", "--cap-drop", "MKNOD", "--cap-drop", "NET_RAW", "--cap-add", "SYS_NICE",
		"--ulimit", "nofile=4096:8192", "--sysctl", "net.core.somaxconn=511", "--add-host", "db.example:10.9.9.9",
		"--read-only", "--tmpfs", "/run:size=1m", "--mount", "type=tmpfs,destination=/data,tmpfs-size=8388608",
		"--stop-signal", "SIGINT", "--stop-timeout", "3", "--security-opt", "no-new-privileges", "--shm-size", "32m",
		"--dns", "10.9.9.53", "--dns-search", "example", "--dns-option", "ndots:2", "--group-add", "29", "--oom-score-adj", "100",
		"--health-cmd", "true", "--health-interval", "5s", "--health-retries", "4",
		"--device", "/dev/zero:/dev/myzero:rw", // --privileged cannot run here: root lacks CAP_SYS_RESOURCE, runc fails "unable to apply caps"
		dockertest.Image, "counter")
	node.WaitLog(t, name, 10*time.Second, "running", func(l string) bool { return strings.Contains(l, "count 0") })
	s, err := d.Spec(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Init || s.Memory != 64<<20 || s.PidsLimit != 64 || len(s.PortBindings) != 1 || s.Healthcheck == nil || len(s.Devices) != 1 {
		t.Fatalf("spec lacks settings: %+v", s)
	}
	cfg, hc := s.CreateConfig()
	copyName := name + "-copy"
	_, _ = node.Docker("rm", "-f", copyName)
	t.Cleanup(func() { _, _ = node.Docker("rm", "-f", copyName) })
	if _, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, copyName); err != nil {
		t.Fatalf("docker create from the spec: %v", err)
	}
	orig, err := cli.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	made, err := cli.ContainerInspect(ctx, copyName)
	if err != nil {
		t.Fatal(err)
	}
	o, m := orig.HostConfig, made.HostConfig
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Init", m.Init, o.Init}, {"PortBindings", m.PortBindings, o.PortBindings},
		{"ExposedPorts", made.Config.ExposedPorts, orig.Config.ExposedPorts},
		{"Memory", m.Memory, o.Memory}, {"MemorySwap", m.MemorySwap, o.MemorySwap},
		{"MemoryReservation", m.MemoryReservation, o.MemoryReservation}, {"NanoCPUs", m.NanoCPUs, o.NanoCPUs},
		{"CPUShares", m.CPUShares, o.CPUShares}, {"PidsLimit", m.PidsLimit, o.PidsLimit},
		{"CapAdd", m.CapAdd, o.CapAdd}, {"CapDrop", m.CapDrop, o.CapDrop}, {"Ulimits", m.Ulimits, o.Ulimits},
		{"Sysctls", m.Sysctls, o.Sysctls}, {"ExtraHosts", m.ExtraHosts, o.ExtraHosts},
		{"ReadonlyRootfs", m.ReadonlyRootfs, o.ReadonlyRootfs}, {"Tmpfs", m.Tmpfs, o.Tmpfs}, {"Mounts", m.Mounts, o.Mounts},
		{"StopSignal", made.Config.StopSignal, orig.Config.StopSignal}, {"StopTimeout", made.Config.StopTimeout, orig.Config.StopTimeout},
		{"SecurityOpt", m.SecurityOpt, o.SecurityOpt}, {"ShmSize", m.ShmSize, o.ShmSize},
		{"DNS", m.DNS, o.DNS}, {"DNSSearch", m.DNSSearch, o.DNSSearch}, {"DNSOptions", m.DNSOptions, o.DNSOptions},
		{"GroupAdd", m.GroupAdd, o.GroupAdd}, {"OomScoreAdj", m.OomScoreAdj, o.OomScoreAdj},
		{"Healthcheck", made.Config.Healthcheck, orig.Config.Healthcheck},
		{"Cmd", made.Config.Cmd, orig.Config.Cmd}, {"Env", made.Config.Env, orig.Config.Env},
		{"Privileged", m.Privileged, o.Privileged}, {"Devices", m.Devices, o.Devices},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: recreated %#v, original %#v", f.name, f.got, f.want)
		}
	}
}

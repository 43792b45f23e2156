package container_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// inspected is what docker inspect shows for a container run with every setting a
// restore must carry (the shape a 20.10 engine returns).
func inspected() dcontainer.InspectResponse {
	yes, pids, stop := true, int64(64), 3
	return dcontainer.InspectResponse{
		ContainerJSONBase: &dcontainer.ContainerJSONBase{
			ID: "0123456789abcdef0123", Name: "/redis_server.1.abc", Image: "sha256:feed",
			HostConfig: &dcontainer.HostConfig{
				Init:         &yes,
				PortBindings: nat.PortMap{"6379/tcp": {{HostIP: "", HostPort: "16379"}}},
				CapAdd:       []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD", "NET_RAW"},
				ExtraHosts:     []string{"db.example:10.9.0.5"},
				ReadonlyRootfs: true,
				SecurityOpt:    []string{"no-new-privileges"},
				Tmpfs:          map[string]string{"/run": "size=1m"},
				ShmSize:        32 << 20,
				DNS:            []string{"10.240.6.1"}, DNSSearch: []string{"example"}, DNSOptions: []string{"ndots:2"},
				GroupAdd: []string{"audio"}, OomScoreAdj: 100,
				Sysctls: map[string]string{"net.core.somaxconn": "511"},
				Resources: dcontainer.Resources{
					Memory: 256 << 20, MemorySwap: 512 << 20, MemoryReservation: 64 << 20,
					NanoCPUs: 500000000, CPUShares: 512, PidsLimit: &pids,
					Ulimits: []*dcontainer.Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}},
					Devices: []dcontainer.DeviceMapping{{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}},
				},
				Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/data", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 8 << 20, Mode: 0o1777}}},
			},
		},
		Config: &dcontainer.Config{
			Image: "swarmckpt-thirdparty/redis:deb", Cmd: []string{"redis-server"}, Env: []string{"A=1"},
			User: "0", Hostname: "h", Labels: map[string]string{"x": "y"},
			ExposedPorts: nat.PortSet{"6379/tcp": {}}, StopSignal: "SIGINT", StopTimeout: &stop,
			Healthcheck: &dcontainer.HealthConfig{Test: []string{"CMD", "redis-cli", "ping"}, Interval: 5 * time.Second, Retries: 4},
		},
		Mounts: []dcontainer.MountPoint{
			{Type: mount.TypeTmpfs, Destination: "/data", RW: true},
			{Type: mount.TypeVolume, Name: "vol", Source: "/var/lib/docker/volumes/vol/_data", Destination: "/v", RW: false},
			// A --tmpfs mount shows up here too on some engines: recreated from Tmpfs only.
			{Type: mount.TypeTmpfs, Destination: "/run", RW: true},
		},
		NetworkSettings: &dcontainer.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"net": {IPAddress: "10.9.0.2", Aliases: []string{"0123456789ab", "redis"}},
		}},
	}
}

func TestInspectSpecCreateRoundTrip(t *testing.T) {
	ci := inspected()
	s := container.FromInspect(ci)
	// Through a manifest (JSON) and back, as a restore on another node reads it.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back container.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, back) {
		t.Fatalf("spec changed through JSON:\n%+v\n%+v", s, back)
	}
	cfg, hc := back.CreateConfig()
	want, wantH := ci.Config, ci.HostConfig
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Image", cfg.Image, want.Image}, {"Cmd", cfg.Cmd, want.Cmd}, {"Env", cfg.Env, want.Env},
		{"User", cfg.User, want.User}, {"Labels", cfg.Labels, want.Labels},
		{"ExposedPorts", cfg.ExposedPorts, want.ExposedPorts}, {"StopSignal", cfg.StopSignal, want.StopSignal},
		{"StopTimeout", *cfg.StopTimeout, *want.StopTimeout},
		{"Init", *hc.Init, *wantH.Init}, {"PortBindings", hc.PortBindings, wantH.PortBindings},
		{"CapAdd", hc.CapAdd, wantH.CapAdd}, {"CapDrop", hc.CapDrop, wantH.CapDrop},
		{"ExtraHosts", hc.ExtraHosts, wantH.ExtraHosts}, {"ReadonlyRootfs", hc.ReadonlyRootfs, wantH.ReadonlyRootfs},
		{"SecurityOpt", hc.SecurityOpt, wantH.SecurityOpt}, {"Tmpfs", hc.Tmpfs, wantH.Tmpfs},
		{"ShmSize", hc.ShmSize, wantH.ShmSize}, {"Sysctls", hc.Sysctls, wantH.Sysctls},
		{"Memory", hc.Memory, wantH.Memory}, {"MemorySwap", hc.MemorySwap, wantH.MemorySwap},
		{"MemoryReservation", hc.MemoryReservation, wantH.MemoryReservation},
		{"NanoCPUs", hc.NanoCPUs, wantH.NanoCPUs}, {"CPUShares", hc.CPUShares, wantH.CPUShares},
		{"PidsLimit", *hc.PidsLimit, *wantH.PidsLimit}, {"Ulimits", hc.Ulimits, wantH.Ulimits},
		{"Devices", hc.Devices, wantH.Devices}, {"Healthcheck", cfg.Healthcheck, want.Healthcheck},
		{"DNS", hc.DNS, wantH.DNS}, {"DNSSearch", hc.DNSSearch, wantH.DNSSearch}, {"DNSOptions", hc.DNSOptions, wantH.DNSOptions},
		{"GroupAdd", hc.GroupAdd, wantH.GroupAdd}, {"OomScoreAdj", hc.OomScoreAdj, wantH.OomScoreAdj},
		{"Mounts", hc.Mounts, []mount.Mount{
			{Type: mount.TypeTmpfs, Target: "/data", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 8 << 20, Mode: 0o1777}},
			{Type: mount.TypeVolume, Source: "vol", Target: "/v", ReadOnly: true},
		}},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: recreated with %#v, inspect showed %#v", f.name, f.got, f.want)
		}
	}
	if s.Service != "" || len(s.Networks) != 1 || !reflect.DeepEqual(s.Networks[0].Aliases, []string{"redis"}) {
		t.Errorf("networks %+v: the short-ID alias must be dropped, redis kept", s.Networks)
	}
}

// A manifest written before the runtime settings existed decodes with them unset, and
// a spec without them is written exactly as before (omitempty): both versions read
// each other's manifests.
func TestSpecJSONBackwardCompatible(t *testing.T) {
	old := `{"name":"c","image":"i","cmd":["x"],"mounts":[{"type":"tmpfs","target":"/t"}],"networks":[{"name":"n","ipv4":"10.0.0.2"}]}`
	var s container.Spec
	if err := json.Unmarshal([]byte(old), &s); err != nil {
		t.Fatal(err)
	}
	cfg, hc := s.CreateConfig()
	if hc.Init != nil || hc.Memory != 0 || hc.PidsLimit != nil || len(hc.PortBindings) != 0 || cfg.StopTimeout != nil || hc.ReadonlyRootfs {
		t.Fatalf("old manifest recreated with settings it never had: %+v %+v", cfg, hc)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != old {
		t.Fatalf("spec without the new settings marshals as\n%s\nwant\n%s", b, old)
	}
}

// The Fake hands back exactly the Spec it was given, runtime settings included, so
// code under test sees what a Docker inspect would give it.
func TestFakeSpecCarriesRuntimeSettings(t *testing.T) {
	f := container.NewFake()
	want := container.FromInspect(inspected())
	f.Add(container.Ref{ID: "0123456789abcdef0123", Name: "redis", Pid: 7}, want)
	got, err := f.Spec(t.Context(), "redis")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("fake spec %+v, %v", got, err)
	}
}

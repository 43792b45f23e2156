package stack

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

func u64(v uint64) *uint64 { return &v }

func svc(id, name string, replicas uint64, mode swarm.ResolutionMode, mounts ...mount.Mount) swarm.Service {
	s := swarm.Service{ID: id}
	s.Spec.Name = name
	s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(replicas)}
	if mode != "" {
		s.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: mode}
	}
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Mounts: mounts}
	return s
}

func task(id, svcID string, slot int, node, ctr string, subnet string, addr string, mounts ...mount.Mount) swarm.Task {
	t := swarm.Task{ID: id, ServiceID: svcID, Slot: slot, NodeID: node, DesiredState: swarm.TaskStateRunning}
	t.Status.State = swarm.TaskStateRunning
	t.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: ctr}
	t.Spec.ContainerSpec = &swarm.ContainerSpec{Image: "swarmckpt/bank:dev@sha256:abc", Mounts: mounts}
	n := swarm.Network{ID: "netid1"}
	n.Spec.Name = "bank_net"
	t.Spec.Networks = []swarm.NetworkAttachmentConfig{{Target: "netid1", Aliases: []string{"holder"}}}
	if subnet != "" {
		n.Spec.IPAMOptions = &swarm.IPAMOptions{Configs: []swarm.IPAMConfig{{Subnet: subnet}}}
	}
	t.NetworksAttachments = []swarm.NetworkAttachment{{Network: n, Addresses: []string{addr}}}
	return t
}

func nodes() []swarm.Node {
	var out []swarm.Node
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		nd := swarm.Node{ID: "id-" + n}
		nd.Description.Hostname = n
		out = append(out, nd)
	}
	return out
}

func TestBuildResolvesContainersNodesAndIPs(t *testing.T) {
	services := []swarm.Service{svc("s1", "bank_holder", 2, swarm.ResolutionModeDNSRR), svc("s2", "bank_teller", 1, swarm.ResolutionModeDNSRR)}
	tasks := []swarm.Task{
		task("t2", "s1", 2, "id-lab-2", "c2", "10.10.0.0/24", "10.10.0.3/24"),
		task("t1", "s1", 1, "id-lab-1", "c1", "10.10.0.0/24", "10.10.0.2/24"),
		task("t3", "s2", 1, "id-lab-3", "c3", "10.10.0.0/24", "10.10.0.4/24"),
	}
	old := task("t0", "s1", 1, "id-lab-3", "c0", "10.10.0.0/24", "10.10.0.9/24")
	old.Status.State = swarm.TaskStateShutdown
	tasks = append(tasks, old)
	st, err := Build("bank", services, tasks, nodes())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Containers) != 3 {
		t.Fatalf("containers = %+v, want 3 (shut down tasks excluded)", st.Containers)
	}
	c := st.Containers[0]
	if c.Key() != "bank_holder.1" || c.Node != "lab-1" || c.ContainerID != "c1" || c.IPs[0] != "10.10.0.2" || c.Image != "swarmckpt/bank:dev" {
		t.Fatalf("first container %+v", c)
	}
	// The compose short name is an alias of the task spec, not of the container.
	if a := c.Aliases["bank_net"]; len(a) != 1 || a[0] != "holder" {
		t.Fatalf("aliases %v, want bank_net: [holder]", c.Aliases)
	}
	if got := strings.Join(st.Nodes(), ","); got != "lab-1,lab-2,lab-3" {
		t.Fatalf("nodes %s", got)
	}
	if len(st.Warnings) != 0 {
		t.Fatalf("unexpected warnings %v", st.Warnings)
	}
}

func TestBuildWarnsWithFixes(t *testing.T) {
	bind := mount.Mount{Type: mount.TypeBind, Source: "/srv/data", Target: "/data"}
	vol := mount.Mount{Type: mount.TypeVolume, Source: "web_db", Target: "/var/lib/db"}
	tmpfs := mount.Mount{Type: mount.TypeTmpfs, Target: "/run/cache"}
	services := []swarm.Service{svc("s1", "web", 1, "", bind, vol, tmpfs)}
	tasks := []swarm.Task{task("t1", "s1", 1, "id-lab-1", "c1", "", "10.0.1.2/24", bind, vol, tmpfs)}
	st, err := Build("web", services, tasks, nodes())
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, w := range st.Warnings {
		if w.Fix == "" {
			t.Errorf("warning without a fix: %+v", w)
		}
		all = append(all, w.String())
	}
	text := strings.Join(all, "\n")
	if strings.Contains(text, "/run/cache") {
		t.Errorf("a tmpfs mount is in the snapshot (CRIU dumps its content) and needs no warning:\n%s", text)
	}
	for _, want := range []string{"no fixed subnet", "VIP endpoint mode", "endpoint_mode: dnsrr", "/srv/data", "volume web_db at /var/lib/db"} {
		if !strings.Contains(text, want) {
			t.Errorf("warnings lack %q:\n%s", want, text)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build("nope", nil, nil, nodes()); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "docker stack deploy") {
		t.Fatalf("missing stack: %v", err)
	}
	services := []swarm.Service{svc("s1", "web", 3, swarm.ResolutionModeDNSRR)}
	tasks := []swarm.Task{task("t1", "s1", 1, "id-lab-1", "c1", "10.0.0.0/24", "10.0.0.2/24")}
	if _, err := Build("web", services, tasks, nodes()); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("partial stack: %v", err)
	}
}

func TestBuildWarnsAboutHealthchecks(t *testing.T) {
	services := []swarm.Service{svc("s1", "redis_server", 1, swarm.ResolutionModeDNSRR), svc("s2", "redis_writer", 1, swarm.ResolutionModeDNSRR)}
	services[0].Spec.TaskTemplate.ContainerSpec.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "redis-cli", "ping"}, Interval: 300 * time.Millisecond}
	services[1].Spec.TaskTemplate.ContainerSpec.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	tasks := []swarm.Task{task("t1", "s1", 1, "id-lab-1", "c1", "10.0.1.0/24", "10.0.1.2/24"), task("t2", "s2", 1, "id-lab-2", "c2", "10.0.1.0/24", "10.0.1.3/24")}
	st, err := Build("redis", services, tasks, nodes())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 {
		t.Fatalf("warnings %v, want one about redis_server's healthcheck (none for a disabled one)", st.Warnings)
	}
	w := st.Warnings[0].String()
	for _, want := range []string{"service redis_server", "every 300ms, 3 retries", "about 900ms", "FROZEN"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
}

func TestBuildWarnsAboutWhatRestoreDoesNotCarry(t *testing.T) {
	yes, grace := true, 3*time.Second
	services := []swarm.Service{svc("s1", "redis_server", 1, swarm.ResolutionModeDNSRR)}
	cs := services[0].Spec.TaskTemplate.ContainerSpec
	cs.Init = &yes
	cs.CapabilityAdd = []string{"NET_ADMIN"}
	cs.Secrets = []*swarm.SecretReference{{SecretName: "pw"}}
	cs.StopGracePeriod = &grace
	cs.User = "999"
	services[0].Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: 256 << 20}}
	services[0].Spec.EndpointSpec.Ports = []swarm.PortConfig{
		{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 6379, PublishedPort: 16379, PublishMode: swarm.PortConfigPublishModeHost},
		{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 6380, PublishedPort: 16380, PublishMode: swarm.PortConfigPublishModeIngress},
	}
	tasks := []swarm.Task{task("t1", "s1", 1, "id-lab-1", "c1", "10.0.1.0/24", "10.0.1.2/24")}
	st, err := Build("redis", services, tasks, nodes())
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, w := range st.Warnings {
		all = append(all, w.String())
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"published port 16380->6380/tcp (ingress mode", "stop_grace_period 3s", "1 swarm secret(s) and 0 config(s)",
		`runs as user "999"`, "CAP_SYS_RESOURCE", "refused before anything is locked"} {
		if !strings.Contains(text, want) {
			t.Errorf("warnings lack %q:\n%s", want, text)
		}
	}
	// Carried by an exact restore now (container.Spec): no warning about them.
	for _, carried := range []string{"init: true", "docker-init", "16379", "memory limit", "cap_add"} {
		if strings.Contains(text, carried) {
			t.Errorf("warns about %q, which an exact restore carries:\n%s", carried, text)
		}
	}
	// A plain service (the bank of TestBuild) gets none of these.
	if got := notRestored(svc("s2", "plain", 1, swarm.ResolutionModeDNSRR).Spec); len(got) != 0 {
		t.Errorf("notRestored of a plain service = %v", got)
	}
	for user, warn := range map[string]bool{"": false, "0": false, "root": false, "0:0": false, "root:root": false, "1000": true, "0:1000": true, "redis": true} {
		if _, got := userWarning("s", user); got != warn {
			t.Errorf("userWarning(%q) = %v, want %v", user, got, warn)
		}
	}
}

package thirdparty_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settingsFields are the docker inspect fields an exact restore must give the restored
// container as the original had them (Config.* and HostConfig.*). Values that Docker
// shows for "not set" (null, 0, "", [], {}, false) compare equal to each other.
var settingsFields = []string{
	"Config.Image", "Config.Entrypoint", "Config.Cmd", "Config.Env", "Config.User", "Config.WorkingDir",
	"Config.Hostname", "Config.ExposedPorts", "Config.StopSignal", "Config.StopTimeout", "Config.Healthcheck",
	"HostConfig.Init", "HostConfig.PortBindings", "HostConfig.CapAdd", "HostConfig.CapDrop", "HostConfig.Privileged",
	"HostConfig.ExtraHosts", "HostConfig.ReadonlyRootfs", "HostConfig.SecurityOpt", "HostConfig.Tmpfs",
	"HostConfig.ShmSize", "HostConfig.Sysctls", "HostConfig.Memory", "HostConfig.MemorySwap",
	"HostConfig.MemoryReservation", "HostConfig.NanoCpus", "HostConfig.CpuShares", "HostConfig.CpuQuota",
	"HostConfig.CpuPeriod", "HostConfig.CpusetCpus", "HostConfig.PidsLimit", "HostConfig.Ulimits",
	"HostConfig.Devices", "HostConfig.Mounts", "HostConfig.Dns", "HostConfig.DnsSearch", "HostConfig.DnsOptions",
	"HostConfig.GroupAdd", "HostConfig.OomScoreAdj",
}

// inspectOf returns docker inspect of the one container with label on node n.
func (p *tp) inspectOf(n int, label string) map[string]any {
	p.t.Helper()
	id, err := p.docker(n, "ps", "-q", "--no-trunc", "--filter", "label="+label)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		p.t.Fatalf("container with %s on node %d: %q %v", label, n, id, err)
	}
	out, err := p.docker(n, "inspect", id)
	if err != nil {
		p.t.Fatalf("docker inspect %s: %v: %s", id, err, out)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		p.t.Fatalf("docker inspect %s: %v: %s", id, err, out)
	}
	return v[0]
}

// field returns the value at a dotted path of an inspect document.
func field(doc map[string]any, path string) any {
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return unset(v)
}

// unset maps Docker's "not set" values to nil.
func unset(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		if !x {
			return nil
		}
	case float64:
		if x == 0 {
			return nil
		}
	case string:
		if x == "" {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
	}
	return v
}

// nsValue runs cat FILE in the network namespace of host pid (a sysctl as the
// container sees it).
func nsValue(t *testing.T, pid int, file string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "cat", file).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter -t %d -n cat %s: %v: %s", pid, file, err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// live is what the kernel shows for a container's first process: the settings in
// effect, not only what Docker recorded.
type live struct {
	Somaxconn, UnprivPorts, Nofile, RootMount, DataMount, MemLimit string
}

func (p *tp) liveOf(doc map[string]any) live {
	p.t.Helper()
	pid := int(doc["State"].(map[string]any)["Pid"].(float64))
	var l live
	l.Somaxconn = nsValue(p.t, pid, "/proc/sys/net/core/somaxconn")
	l.UnprivPorts = nsValue(p.t, pid, "/proc/sys/net/ipv4/ip_unprivileged_port_start")
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			l.Nofile = strings.Join(strings.Fields(line)[3:5], " ")
		}
	}
	b, _ = os.ReadFile(fmt.Sprintf("/proc/%d/mounts", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		opts := strings.Split(f[3], ",")
		sort.Strings(opts)
		switch f[1] {
		case "/":
			for _, o := range opts {
				if o == "ro" || o == "rw" {
					l.RootMount = f[2] + " " + o
				}
			}
		case "/data":
			l.DataMount = f[2]
			for _, o := range opts {
				if strings.HasPrefix(o, "size=") {
					l.DataMount += " " + o
				}
			}
		}
	}
	id := doc["Id"].(string)
	matches, _ := filepath.Glob("/sys/fs/cgroup/memory/*/" + id + "/memory.limit_in_bytes")
	if len(matches) == 1 {
		b, _ := os.ReadFile(matches[0])
		l.MemLimit = strings.TrimSpace(string(b))
	}
	return l
}

// testRuntimeSettings: an exact restore recreates each container with the runtime
// settings of the original (deploy/examples/redis-settings.yml: host-mode port, memory
// and CPU limits, capabilities, ulimits, sysctls, extra_hosts, read-only root + tmpfs,
// stop signal, and init: true), compared field by field in docker inspect and, for the
// ones the kernel shows, in the restored processes themselves. The init service must
// come back with docker-init as PID 1 and the program as its child, still counting.
// Then the same snapshot is restored as swarm tasks and the kernel-side checks and
// the init tree are repeated.
func testRuntimeSettings(t *testing.T, p *tp) {
	if _, err := os.Stat(filepath.Join(p.img, "busybox.tar")); err != nil {
		t.Skipf("SKIP INTEGRATION: no busybox.tar in %s: run 'make images-thirdparty'", p.img)
	}
	const stack = "rset"
	if out, code := p.run(3*time.Minute, "lab", "deploy", "--name", labName, "--images", p.img,
		filepath.Join(repoRoot(), "deploy", "examples", "redis-settings.yml"), stack); code != 0 {
		t.Fatalf("lab deploy %s: exit %d: %s", stack, code, out)
	}
	services := []string{stack + "_server", stack + "_sleeper"}
	orig := map[string]map[string]any{}
	origLive := map[string]live{}
	for _, svc := range services {
		nodes := p.nodesOf(svc)
		if len(nodes) != 1 {
			t.Fatalf("%s runs on nodes %v, want one", svc, nodes)
		}
		orig[svc] = p.inspectOf(nodes[0], "com.docker.swarm.service.name="+svc)
		if svc == stack+"_server" {
			origLive[svc] = p.liveOf(orig[svc])
			if l := origLive[svc]; l.Somaxconn != "511" || l.MemLimit == "" || l.RootMount == "" || l.DataMount == "" {
				t.Fatalf("the original %s: %+v, want somaxconn 511, a memory cgroup limit, the root and /data mounts", svc, l)
			}
		}
	}
	// The fixture must set what it claims to, or the comparison proves nothing.
	for _, f := range []string{"HostConfig.PortBindings", "HostConfig.CapDrop", "HostConfig.CapAdd", "HostConfig.Ulimits",
		"HostConfig.Sysctls", "HostConfig.ExtraHosts", "HostConfig.ReadonlyRootfs", "HostConfig.Memory", "HostConfig.NanoCpus",
		"HostConfig.Mounts", "Config.StopSignal"} {
		if field(orig[stack+"_server"], f) == nil {
			t.Fatalf("the original %s_server has no %s: the fixture does not exercise it", stack, f)
		}
	}
	if field(orig[stack+"_sleeper"], "HostConfig.Init") != true {
		t.Fatalf("the original %s_sleeper does not run with init", stack)
	}
	ticks := p.ticks
	waitFor(t, time.Minute, "the sleeper to count", func() bool {
		return ticks(p.nodesOf(stack + "_sleeper")[0], "com.docker.swarm.service.name="+stack+"_sleeper") >= 5
	})

	atSnapshot := ticks(p.nodesOf(stack + "_sleeper")[0], "com.docker.swarm.service.name="+stack+"_sleeper")
	id := "tp-rset"
	out, code := p.run(2*time.Minute, "snapshot", stack, "--id", id)
	if code != 0 || !strings.Contains(out, "committed") {
		t.Fatalf("snapshot: exit %d\n%s", code, out)
	}
	for _, gone := range []string{"init: true", "cap_add", "memory limit", "published port 16379"} {
		if strings.Contains(out, gone) {
			t.Errorf("snapshot still warns about %q, which an exact restore carries:\n%s", gone, out)
		}
	}
	out, code = p.run(5*time.Minute, "restore", id)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	t.Logf("restore %s:\n%s", id, out)
	defer p.removeRestored()

	for _, svc := range services {
		nodes := p.nodesOf(svc)
		if len(nodes) != 1 {
			t.Fatalf("restored %s on nodes %v, want one", svc, nodes)
		}
		got := p.inspectOf(nodes[0], "io.swarmckpt.service="+svc)
		var diffs []string
		for _, f := range settingsFields {
			if a, b := field(orig[svc], f), field(got, f); !reflect.DeepEqual(a, b) {
				diffs = append(diffs, fmt.Sprintf("%s: original %v, restored %v", f, a, b))
			}
		}
		if len(diffs) > 0 {
			t.Errorf("%s restored with other settings than the original:\n  %s", svc, strings.Join(diffs, "\n  "))
		} else {
			t.Logf("%s: %d inspect fields identical after the exact restore", svc, len(settingsFields))
		}
		if svc == stack+"_server" {
			if l := p.liveOf(got); l != origLive[svc] {
				t.Errorf("%s in effect after restore %+v, before %+v", svc, l, origLive[svc])
			} else {
				t.Logf("%s in effect before and after: %+v", svc, l)
			}
		}
	}
	// init: docker-init is PID 1 of the restored sleeper, the shell its child, and the
	// count goes on from the checkpoint.
	p.checkInit(stack+"_sleeper", "io.swarmckpt.service="+stack+"_sleeper", atSnapshot)

	// The same snapshot restored as swarm tasks (the exact restore's containers are
	// removed first): swarm applies the service spec itself; what the wrapper adds (net
	// sysctls in the restored namespace, the resolved docker-init) must hold there too.
	out, code = p.run(5*time.Minute, "restore", id, "--mode", "swarm")
	if code != 0 {
		t.Fatalf("restore --mode swarm: exit %d\n%s", code, out)
	}
	t.Logf("restore %s --mode swarm:\n%s", id, out)
	srv := p.nodesOf(stack + "_server")
	if len(srv) != 1 {
		t.Fatalf("%s_server as a swarm task on nodes %v, want one", stack, srv)
	}
	task := p.inspectOf(srv[0], "com.docker.swarm.service.name="+stack+"_server")
	if l := p.liveOf(task); l != origLive[stack+"_server"] {
		t.Errorf("%s_server in effect after restore --mode swarm %+v, before %+v", stack, l, origLive[stack+"_server"])
	} else {
		t.Logf("%s_server as a swarm task, in effect: %+v (as before)", stack, l)
	}
	p.checkInit(stack+"_sleeper", "com.docker.swarm.service.name="+stack+"_sleeper", atSnapshot)
}

// checkInit checks that the one container with label (service svc) runs docker-init
// as PID 1 with the shell as its child, at a tick of at least from, and counting on.
func (p *tp) checkInit(svc, label string, from int) {
	t := p.t
	t.Helper()
	nodes := p.nodesOf(svc)
	if len(nodes) != 1 {
		t.Fatalf("%s on nodes %v, want one", svc, nodes)
	}
	n := nodes[0]
	cid, _ := p.docker(n, "ps", "-q", "--filter", "label="+label)
	top, err := p.docker(n, "top", cid, "-o", "pid,ppid,args")
	if err != nil {
		t.Fatalf("docker top: %v: %s", err, top)
	}
	var initPid, shParent string
	for _, line := range strings.Split(top, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch {
		case f[2] == "/sbin/docker-init":
			initPid = f[0]
		case f[2] == "/bin/sh":
			shParent = f[1]
		}
	}
	if initPid == "" || shParent != initPid {
		t.Fatalf("restored %s's processes:\n%s\nwant /sbin/docker-init with /bin/sh as its child", svc, top)
	}
	first := p.ticks(n, label)
	if first < from {
		t.Fatalf("the restored %s is at tick %d, it was at %d just before the snapshot: restarted, not restored", svc, first, from)
	}
	waitFor(t, 30*time.Second, "the restored "+svc+" to count on", func() bool { return p.ticks(n, label) > first+3 })
	t.Logf("init: true restored (%s): docker-init (pid %s) with the shell as its child, counting from tick %d", label, initPid, first)
}

// ticks returns the last "tick N" the container with label on node n printed.
func (p *tp) ticks(n int, label string) int {
	id, _ := p.docker(n, "ps", "-q", "--filter", "label="+label)
	out, _ := p.docker(n, "logs", "--tail", "1", id)
	v, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(out), "tick "))
	return v
}

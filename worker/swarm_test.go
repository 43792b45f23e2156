package worker_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

// TestSwarmTaskRestoredAsTask: a swarm service's task container is dumped (it exits, so
// swarm starts a replacement task); the set was placed for the service slot on that node,
// so the runtime wrapper restores the replacement from it: the task continues writing
// from the checkpoint and stays a task swarm supervises. Its state is also in the
// container's own filesystem (a file it keeps open and appends to): the wrapper applies
// the set's writable layer into the new task's rootfs before CRIU restores, so the
// file is there with the dumped content.
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
		"--constraint", "node.hostname=="+host, "--restart-delay", "3s", dockertest.Image, "filewriter", "/var/lib/app"); err != nil {
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
	n2.WaitLog(t, old, 20*time.Second, "writing", func(l string) bool { return lastWrote(l) >= 10 })
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
	lastOld := lastWrote(n2.MustDocker(t, "logs", old))
	dumped, _, ok := copyOut(t, n2, old, "/var/lib/app/db")
	if !ok {
		t.Fatal("the dumped task's /var/lib/app/db is missing")
	}
	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Service: svc, Slot: 1}); err != nil {
		t.Fatal(err)
	}
	fresh := taskContainer(old)
	logs := n2.WaitLog(t, fresh, 30*time.Second, "writing after restore", func(l string) bool { return lastWrote(l) > lastOld+1 })
	first, _ := strconv.Atoi(wroteRE.FindStringSubmatch(logs)[1])
	if first != lastOld+1 {
		t.Fatalf("replacement task started at wrote %d; the checkpoint was at %d: not restored from it", first, lastOld)
	}
	if got, _, ok := copyOut(t, n2, fresh, "/var/lib/app/db"); !ok || !bytes.HasPrefix(got, dumped) || len(got) == len(dumped) {
		t.Fatalf("restored task's /var/lib/app/db has %d bytes (found %v), the dumped one %d: the writable layer was not applied, or the process does not write to it", len(got), ok, len(dumped))
	}
	if _, _, ok := copyOut(t, n2, fresh, "/etc/image-file"); ok {
		t.Fatal("/etc/image-file, deleted before the dump, is back in the restored task")
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

// swarmTask is one task of a service: its container on the node and its address on
// the network.
type swarmTask struct {
	task, container string
	ip              netip.Addr
}

// runningTask polls the manager for the task of svc that swarm wants running (or ready:
// waiting out the restart delay) and that is not one of not, with its address on network net (allocated before the task's
// container is created).
func runningTask(t *testing.T, mgr dockertest.Node, svc, net string, not ...string) swarmTask {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// A replacement task waits out the restart delay with desired state "ready";
		// swarm allocated its address when it created it.
		ids, _ := mgr.Docker("service", "ps", "-q", "--no-trunc", svc)
		for _, id := range strings.Fields(ids) {
			if slices.Contains(not, id) {
				continue
			}
			out, err := mgr.Docker("inspect", "--format", `{{.DesiredState}} {{range .NetworksAttachments}}{{if eq .Network.Spec.Name "`+net+`"}}{{index .Addresses 0}}{{end}}{{end}}`, id)
			desired, out, _ := strings.Cut(out, " ")
			if err != nil || out == "" || (desired != "running" && desired != "ready") {
				continue
			}
			p, err := netip.ParsePrefix(out)
			if err != nil {
				t.Fatalf("task %s address %q: %v", id, out, err)
			}
			return swarmTask{task: id, ip: p.Addr()}
		}
	}
	t.Fatalf("no new running task of %s with an address on %s after 60s", svc, net)
	return swarmTask{}
}

// taskContainer polls node n for the running container of swarm task task.
func taskContainer(t *testing.T, n dockertest.Node, task string) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ := n.Docker("ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.task.id="+task)
		if f := strings.Fields(out); len(f) == 1 {
			return f[0]
		}
	}
	t.Fatalf("task %s has no running container on %s after 60s", task, n.Host)
	return ""
}

// TestSwarmEchoPairKeepsItsConnectionOnNewTaskAddresses: an echo server and client run
// as swarm services on two nodes and talk over one TCP connection. Both are locked,
// frozen and dumped (their tasks exit; swarm starts replacement tasks, which get new
// IPs). Each set is placed for its service slot, network-locked, announcing an
// address map; the test, in the coordinator's role, reads the replacement tasks' IPs
// from the manager and, once both wrappers wait for it in `create`, gives both nodes
// the map {old IP -> new IP}. The runtime
// wrappers rewrite the images and restore both as swarm tasks; once both run, they are
// unlocked. The client must continue on the same connection: next echo, no reconnect,
// no error; swarm shows both tasks running.
func TestSwarmEchoPairKeepsItsConnectionOnNewTaskAddresses(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	for _, n := range nodes {
		if out, err := n.Docker("info", "--format", "{{.DefaultRuntime}}"); err != nil || out != "swarmckpt" {
			t.Skipf("SKIPPED LOUDLY: node %s's default runtime is %q, not swarmckpt (swarm tasks use the default runtime)", n.Host, out)
		}
	}
	host1, _ := n1.Docker("info", "--format", "{{.Name}}")
	host2, _ := n2.Docker("info", "--format", "{{.Name}}")
	sfx := time.Now().UnixNano() % 100000
	net := fmt.Sprintf("rwnet%d", sfx)
	srv, cli := fmt.Sprintf("rwsrv%d", sfx), fmt.Sprintf("rwcli%d", sfx)
	if _, err := n1.Docker("network", "create", "-d", "overlay", "--attachable", "--subnet", fmt.Sprintf("10.236.%d.0/24", sfx%250), net); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot create an overlay network on %s (needs a lab manager): %v", n1.Host, err)
	}
	t.Cleanup(func() {
		_, _ = n1.Docker("service", "rm", srv, cli)
		for i := 0; i < 50; i++ {
			if _, err := n1.Docker("network", "rm", net); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	create := func(name, host string, cmd ...string) {
		args := append([]string{"service", "create", "--detach", "--name", name, "--no-resolve-image", "--network", net,
			"--endpoint-mode", "dnsrr", "--constraint", "node.hostname==" + host, "--restart-delay", "3s", dockertest.Image}, cmd...)
		n1.MustDocker(t, args...)
	}
	create(srv, host1, "echo-server", ":7000")
	create(cli, host2, "echo-client", srv+":7000")
	oldSrv := runningTask(t, n1, srv, net)
	oldCli := runningTask(t, n1, cli, net)
	oldSrv.container = taskContainer(t, n1, oldSrv.task)
	oldCli.container = taskContainer(t, n2, oldCli.task)
	n2.WaitLog(t, oldCli.container, 30*time.Second, "20 echoes", func(l string) bool { return strings.Contains(l, "ok 20\n") })

	a, _, _ := daemon(t, n1, "rw-a")
	b, _, _ := daemon(t, n2, "rw-b")
	ctx := dockertest.Context(t, 3*time.Minute)
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range []struct {
		w *worker.Client
		c string
	}{{a, oldSrv.container}, {b, oldCli.container}} {
		if err := s.w.Lock(ctx, s.c, nil, deadline); err != nil {
			t.Fatal(err)
		}
		if err := s.w.Freeze(ctx, s.c, deadline); err != nil {
			t.Fatal(err)
		}
	}
	mapUntil := time.Now().Add(90 * time.Second)
	places := map[string]*restore.Docker{}
	for _, s := range []struct {
		w   *worker.Client
		n   dockertest.Node
		svc string
		c   string
	}{{a, n1, srv, oldSrv.container}, {b, n2, cli, oldCli.container}} {
		set := s.svc + ".set"
		if _, err := s.w.Dump(ctx, s.c, set, false); err != nil {
			t.Fatal(err)
		}
		// The worker's part of a swarm-native restore, before swarm's restart delay ends.
		v, err := imageset.Check(filepath.Join(s.n.DataRoot, "swarmckpt", "sets", set))
		if err != nil {
			t.Fatal(err)
		}
		rd := &restore.Docker{DataRoot: s.n.DataRoot}
		p, err := rd.PlaceTask(v, s.svc, 1, restore.TaskOptions{NetworkLock: true, AddressMapUntil: mapUntil})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Connections) != 1 || len(p.Closed) != 0 {
			t.Fatalf("%s: placement found connections %v, closes %v; want the one echo connection, none closed (a map is announced)", s.svc, p.Connections, p.Closed)
		}
		t.Logf("%s placed; its connection %s", s.svc, p.Connections[0])
		places[s.svc] = rd
	}
	last := oks(n2.MustDocker(t, "logs", oldCli.container))
	lastOK := last[len(last)-1]

	// The coordinator's part: the replacement tasks' addresses, then the map.
	t0 := time.Now()
	newSrv := runningTask(t, n1, srv, net, oldSrv.task)
	newCli := runningTask(t, n1, cli, net, oldCli.task)
	if newSrv.ip == oldSrv.ip || newCli.ip == oldCli.ip {
		t.Fatalf("replacement tasks kept their addresses (%s, %s): nothing to rewrite; the test proves nothing", newSrv.ip, newCli.ip)
	}
	m, err := rewrite.NewMap(map[netip.Addr]netip.Addr{oldSrv.ip: newSrv.ip, oldCli.ip: newCli.ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("address map: server %s -> %s, client %s -> %s (learnt %v after the dumps)", oldSrv.ip, newSrv.ip, oldCli.ip, newCli.ip, time.Since(t0).Round(time.Millisecond))
	// Give the map only once both wrappers claimed their set and wait in `create`: the
	// slow order (swarm creates the containers before the coordinator knows all new
	// addresses) must work too.
	for svc, rd := range places {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if m, _ := filepath.Glob(filepath.Join(rd.Area(), ociwrap.ForTask(svc, 1)+".restoring-*")); len(m) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the wrapper did not claim the set of %s within 60s", svc)
			}
		}
	}
	for svc, rd := range places {
		for i := 0; ; i++ {
			err := rd.SetAddressMap(svc, 1, m)
			if err == nil {
				break
			}
			if i > 100 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tMap := time.Since(t0)
	newSrv.container = taskContainer(t, n1, newSrv.task)
	newCli.container = taskContainer(t, n2, newCli.task)
	tRestored := time.Since(t0)
	t.Logf("map placed at %s", time.Now().Add(-time.Since(t0)+tMap).UTC().Format("15:04:05.000"))
	for _, x := range []struct {
		n dockertest.Node
		c string
	}{{n1, newSrv.container}, {n2, newCli.container}} {
		t.Logf("runtime log of %.12s:\n%s", x.c, runtimeLog(x.n, x.c))
	}
	for _, x := range []struct {
		n dockertest.Node
		c string
	}{{n1, newSrv.container}, {n2, newCli.container}} {
		pid := x.n.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", x.c)
		if out, err := exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "nft", "list", "table", "inet", netlock.Table).CombinedOutput(); err != nil {
			t.Fatalf("restored task container %.12s has no lock table: %v: %s", x.c, err, out)
		}
	}
	for _, x := range []struct {
		n dockertest.Node
		c string
	}{{n1, newSrv.container}, {n2, newCli.container}} {
		if rl := runtimeLog(x.n, x.c); !strings.Contains(rl, "address map for") || !strings.Contains(rl, "rewritten for the new addresses") {
			t.Fatalf("runtime log of %.12s shows no wait for the map and rewrite:\n%s", x.c, rl)
		}
	}
	if got := oks(n2.MustDocker(t, "logs", newCli.container)); len(got) > 0 {
		t.Fatalf("client echoed while locked: %v", got)
	}
	pid := n2.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", newCli.container)
	ss, _ := exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "ss", "-tnH").CombinedOutput()
	if !strings.Contains(string(ss), newCli.ip.String()+":") || !strings.Contains(string(ss), newSrv.ip.String()+":7000") {
		t.Fatalf("restored client's socket is not %s -> %s:7000:\n%s", newCli.ip, newSrv.ip, ss)
	}
	t1 := time.Now()
	if err := a.Unlock(ctx, newSrv.container, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, newCli.container, nil); err != nil {
		t.Fatal(err)
	}
	n2.WaitLog(t, newCli.container, 30*time.Second, "the first echo after the restore", func(l string) bool { return len(oks(l)) > 0 || strings.Contains(l, "ERR") })
	tFirst := time.Since(t1)
	logs := n2.WaitLog(t, newCli.container, 30*time.Second, "20 echoes after the restore", func(l string) bool {
		o := oks(l)
		return len(o) > 0 && o[len(o)-1] >= lastOK+20 || strings.Contains(l, "ERR")
	})
	tEcho := time.Since(t1)
	if strings.Contains(logs, "ERR") || strings.Contains(logs, "connected") {
		t.Fatalf("client after the restore reconnected or failed:\n%s", logs)
	}
	after := oks(logs)
	if after[0] != lastOK+1 {
		t.Fatalf("first echo after the restore is %d, last before was %d: gap or duplicate", after[0], lastOK)
	}
	for i := 1; i < len(after); i++ {
		if after[i] != after[i-1]+1 {
			t.Fatalf("sequence broken after the restore: %v", after)
		}
	}
	if sl := n1.MustDocker(t, "logs", newSrv.container); strings.Contains(sl, "accepted") || strings.Contains(sl, "closed") {
		t.Fatalf("server after the restore saw a new or closed connection:\n%s", sl)
	}
	for _, x := range []struct {
		n   dockertest.Node
		svc string
	}{{n1, srv}, {n2, cli}} {
		recs, _ := filepath.Glob(filepath.Join(x.n.DataRoot, "swarmckpt", "restored", "svc-"+x.svc+".1.*", rewrite.RecordName))
		if len(recs) != 1 {
			t.Fatalf("%s: no record of the address rewrite in the consumed set: %v", x.svc, recs)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			st, _ := n1.Docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", x.svc)
			if strings.HasPrefix(st, "Running") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("swarm does not see the restored task of %s running: %q", x.svc, st)
			}
		}
	}
	t.Logf("echo connection continued on the new task addresses: echoes %d..%d; after the dumps: map placed %v, both tasks running %v; first echo %v, 20 echoes %v after unlock",
		lastOK+1, after[len(after)-1], tMap.Round(time.Millisecond), tRestored.Round(time.Millisecond), tFirst.Round(time.Millisecond), tEcho.Round(time.Millisecond))
}

// runtimeLog returns the lines of a container's runtime log (containerd's runc --log,
// where swarmckpt-runtime records what it did).
func runtimeLog(n dockertest.Node, id string) string {
	b, err := os.ReadFile(filepath.Join(n.ExecRoot, "containerd", "daemon", "io.containerd.runtime.v2.task", "moby", id, "log.json"))
	if err != nil {
		return "(no runtime log: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// TestSwarmTaskWithoutAddressMapClosesItsConnections: an echo server service is dumped
// while a client service talks to it, and its set is placed for its slot with no
// address map. The placement reports the connection it will close; the wrapper restores
// the replacement task with CRIU's tcp-close and logs the closed connection; the
// restored server is the checkpointed process (no fresh "listening" line), sees its
// connection closed, and still listens.
func TestSwarmTaskWithoutAddressMapClosesItsConnections(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	for _, n := range nodes {
		if out, err := n.Docker("info", "--format", "{{.DefaultRuntime}}"); err != nil || out != "swarmckpt" {
			t.Skipf("SKIPPED LOUDLY: node %s's default runtime is %q, not swarmckpt (swarm tasks use the default runtime)", n.Host, out)
		}
	}
	host1, _ := n1.Docker("info", "--format", "{{.Name}}")
	host2, _ := n2.Docker("info", "--format", "{{.Name}}")
	sfx := time.Now().UnixNano() % 100000
	net := fmt.Sprintf("rwnet%d", sfx)
	srv, cli := fmt.Sprintf("rwsrv%d", sfx), fmt.Sprintf("rwcli%d", sfx)
	if _, err := n1.Docker("network", "create", "-d", "overlay", "--attachable", "--subnet", fmt.Sprintf("10.237.%d.0/24", sfx%250), net); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot create an overlay network on %s (needs a lab manager): %v", n1.Host, err)
	}
	t.Cleanup(func() {
		_, _ = n1.Docker("service", "rm", srv, cli)
		for i := 0; i < 50; i++ {
			if _, err := n1.Docker("network", "rm", net); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	for _, s := range []struct{ name, host, cmd, arg string }{{srv, host1, "echo-server", ":7000"}, {cli, host2, "echo-client", srv + ":7000"}} {
		n1.MustDocker(t, "service", "create", "--detach", "--name", s.name, "--no-resolve-image", "--network", net,
			"--endpoint-mode", "dnsrr", "--constraint", "node.hostname=="+s.host, "--restart-delay", "3s", dockertest.Image, s.cmd, s.arg)
	}
	old := runningTask(t, n1, srv, net)
	old.container = taskContainer(t, n1, old.task)
	oldCli := runningTask(t, n1, cli, net)
	n2.WaitLog(t, taskContainer(t, n2, oldCli.task), 30*time.Second, "20 echoes", func(l string) bool { return strings.Contains(l, "ok 20\n") })

	a, _, _ := daemon(t, n1, "rw-nomap")
	ctx := dockertest.Context(t, 2*time.Minute)
	set := srv + ".set"
	if _, err := a.Dump(ctx, old.container, set, false); err != nil {
		t.Fatal(err)
	}
	v, err := imageset.Check(filepath.Join(n1.DataRoot, "swarmckpt", "sets", set))
	if err != nil {
		t.Fatal(err)
	}
	p, err := (&restore.Docker{DataRoot: n1.DataRoot}).PlaceTask(v, srv, 1, restore.TaskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Closed) != 1 || p.Closed[0].Local.Port() != 7000 || p.Closed[0].Remote.Addr().Unmap() != oldCli.ip {
		t.Fatalf("placement reports closing %v; want the one connection from the client %s to port 7000", p.Closed, oldCli.ip)
	}
	t.Logf("placement reports: will close %s", p.Closed[0])
	fresh := runningTask(t, n1, srv, net, old.task)
	fresh.container = taskContainer(t, n1, fresh.task)
	logs := n1.WaitLog(t, fresh.container, 30*time.Second, "the restored server to see its connection closed", func(l string) bool { return strings.Contains(l, "closed") })
	if strings.Contains(logs, "listening") {
		t.Fatalf("the replacement task started fresh instead of being restored:\n%s", logs)
	}
	rl := runtimeLog(n1, fresh.container)
	if !strings.Contains(rl, "tcp-close") || !strings.Contains(rl, oldCli.ip.String()) {
		t.Fatalf("runtime log does not report the closed connection:\n%s", rl)
	}
	confs, _ := filepath.Glob(filepath.Join(n1.DataRoot, "swarmckpt", "restored", "svc-"+srv+".1.*", "work", "criu.conf"))
	if len(confs) != 1 {
		t.Fatalf("no CRIU config of the tcp-close restore in the consumed set: %v", confs)
	}
	if b, _ := os.ReadFile(confs[0]); !strings.Contains(string(b), "tcp-close") {
		t.Fatalf("CRIU config %s lacks tcp-close:\n%s", confs[0], b)
	}
	pid := n1.MustDocker(t, "inspect", "-f", "{{.State.Pid}}", fresh.container)
	if out, _ := exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "ss", "-ltnH").CombinedOutput(); !strings.Contains(string(out), ":7000") {
		t.Fatalf("restored server does not listen on 7000:\n%s", out)
	}
	t.Logf("restored server log: %s; runtime: %s", strings.TrimSpace(logs), lastLine(rl))
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

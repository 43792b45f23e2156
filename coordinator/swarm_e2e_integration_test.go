package coordinator_test

// Swarm-mode restore end to end on its own 3-node lab (lab name "sw<pid>"): the bank
// stack snapshotted and restored with --mode swarm comes back as swarm's own tasks on
// new addresses with every connection kept; the echo stack migrated with --mode swarm
// keeps its TCP connection. Gated like e2e_integration_test.go:
//   SWARMCKPT_INTEGRATION=1 go test -run IntegrationSwarmMode -v ./coordinator/

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/coordinator/stack/stacktest"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

func setupSwarmE2E(t *testing.T) *e2e {
	if r := lab.IntegrationSkipReason(); r != "" {
		t.Skip(r)
	}
	images, err := lab.ImageDirForTests()
	if err != nil {
		t.Skip("SKIP INTEGRATION: " + err.Error())
	}
	if _, err := os.Stat(filepath.Join(images, "bank.tar")); err != nil {
		t.Skipf("SKIP INTEGRATION: no workload images in %s: run 'make images'", images)
	}
	e := &e2e{t: t, name: fmt.Sprintf("sw%d", os.Getpid()%10000), dir: t.TempDir(),
		workers: map[string]*exec.Cmd{}, agents: map[string]*exec.Cmd{}}
	e.bin = buildBinaries(t, e.dir)
	copy(e.ports[:], freePorts(t, len(e.ports)))
	e.nats = fmt.Sprintf("nats://127.0.0.1:%d", e.ports[0])
	// The lab's dockerds inherit this: swarm's task manager then skips its registry pull
	// before starting a task (no registry is reachable here, and the DNS timeout of that
	// pull costs ~20 s per task start; docs/restore.md "Swarm mode").
	t.Setenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
	if out, code := e.run(3*time.Minute, "lab", "up", "--nodes", "3", "--name", e.name, "--images", images, "--daemons=false"); code != 0 {
		t.Fatalf("lab up: %s", out)
	}
	t.Cleanup(func() {
		for _, c := range []*exec.Cmd{e.coord} {
			if c != nil && c.Process != nil {
				_ = c.Process.Kill()
			}
		}
		for _, m := range []map[string]*exec.Cmd{e.agents, e.workers} {
			for _, c := range m {
				_ = c.Process.Kill()
			}
		}
		if t.Failed() {
			for _, f := range []string{"coordinator", "worker-" + e.name + "-1", "worker-" + e.name + "-2", "worker-" + e.name + "-3"} {
				b, _ := os.ReadFile(filepath.Join(e.dir, f+".log"))
				t.Logf("--- %s.log (tail) ---\n%s", f, tail(string(b), 3000))
			}
			logDockerd(t, e.name, 3)
		}
		if keep := os.Getenv("SWARMCKPT_TEST_LOGS"); keep != "" {
			// Keep every daemon's log, the nodes' dockerd logs too (lab down removes
			// them), for a look after the run.
			to := filepath.Join(keep, t.Name())
			logs, _ := filepath.Glob(filepath.Join(e.dir, "*.log"))
			for i := 1; i <= 3; i++ {
				node := fmt.Sprintf("%s-%d", e.name, i)
				logs = append(logs, filepath.Join("/var/lib/swarmckpt", e.name, node, "dockerd.log"))
			}
			if err := os.MkdirAll(to, 0o700); err == nil {
				for _, l := range logs {
					name := filepath.Base(l)
					if name == "dockerd.log" {
						name = "dockerd-" + filepath.Base(filepath.Dir(l)) + ".log"
					}
					if b, err := os.ReadFile(l); err == nil {
						_ = os.WriteFile(filepath.Join(to, name), b, 0o600)
					}
				}
			}
			t.Logf("daemon logs kept in %s (SWARMCKPT_TEST_LOGS)", to)
		}
		if out, code := e.run(3*time.Minute, "lab", "down", "--name", e.name); code != 0 {
			t.Errorf("lab down: %s", out)
		}
	})
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
		quietBank(t, e.dir), "bank"); code != 0 { // no scheduled snapshots beside the tests' own (policy_integration_test.go)
		t.Fatalf("lab deploy: %s", out)
	}
	for i := 1; i <= 3; i++ {
		e.startWorker(i)
	}
	e.startCoordinator()
	for i := 1; i <= 3; i++ {
		e.startAgent(i)
	}
	waitLong(t, "bank healthy and meshed", e.bankMeshed)
	return e
}

// dockerOut runs the docker CLI against node (output and errors combined).
func (e *e2e) dockerOut(node string, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.docker(node))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var sentRE = regexp.MustCompile(`sent=(\d+)`)

// holderSent is the last "sent=N" progress counter in a holder container's log.
func (e *e2e) holderSent(node, id string) int {
	out, _ := e.dockerOut(node, "logs", id)
	m := sentRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

func TestIntegrationSwarmMode(t *testing.T) {
	e := setupSwarmE2E(t)
	manager := e.name + "-1"

	// stack.Docker passes the same conformance suite as stack.FakeSwarm (what the unit
	// tests of the orchestration run on).
	t.Run("SwarmConformance", func(t *testing.T) {
		e.t = t
		sw, err := stack.NewDocker(e.docker(manager))
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		stacktest.Swarm(t, sw, "bank", "bank_holder", 5)
		waitLong(t, "bank healthy again", func() bool { _, ok := e.bankOK(); return ok })
	})

	t.Run("NodeAvailabilityConformance", func(t *testing.T) {
		e.t = t
		sw, err := stack.NewDocker(e.docker(manager))
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		stacktest.NodeAvailability(t, sw, e.name+"-3") // pause moves nothing
	})

	t.Run("BankRestoredAsSwarmTasks", func(t *testing.T) {
		e.t = t
		if out, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", "bank-sw"); code != 0 {
			t.Fatalf("snapshot: exit %d\n%s", code, out)
		}
		m := e.manifest("bank-sw")
		old := map[string]bool{}
		for _, c := range m.Containers {
			for _, ip := range c.IPs {
				old[ip] = true
			}
		}
		start := time.Now()
		out, code := e.ctl(5*time.Minute, "restore", "bank-sw", "--mode", "swarm", "--output", "json")
		if code != 0 {
			t.Fatalf("restore --mode swarm: exit %d\n%s", code, out)
		}
		t.Logf("restore --mode swarm took %s", time.Since(start).Round(time.Millisecond))
		var res api.RestoreResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("restore output: %v\n%s", err, out)
		}
		if res.Mode != api.ModeSwarm || len(res.Addresses) != 5 || len(res.Containers) != 5 || len(res.Closed) != 0 {
			t.Fatalf("restore result: %+v", res)
		}
		// Swarm's own tasks, one per slot, running, on new addresses.
		ps, err := e.dockerOut(manager, "service", "ps", "bank_holder", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}")
		if err != nil {
			t.Fatalf("service ps: %v\n%s", err, ps)
		}
		lines := strings.Split(strings.TrimSpace(ps), "\n")
		names := map[string]bool{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 3 || f[2] != "Running" {
				t.Errorf("task not running: %q", l)
				continue
			}
			names[f[0]] = true
		}
		if len(lines) != 5 || len(names) != 5 {
			t.Fatalf("docker service ps bank_holder shows %d running tasks (%d slots), want 5 distinct:\n%s", len(lines), len(names), ps)
		}
		t.Logf("docker service ps bank_holder:\n%s", ps)
		var newIPs []string
		for o, n := range res.Addresses {
			if !old[o] {
				t.Errorf("address map key %s is not a snapshot address (%v)", o, old)
			}
			newIPs = append(newIPs, n)
		}
		sort.Strings(newIPs)
		tasks, _ := e.dockerOut(manager, "service", "ps", "bank_holder", "-q", "--filter", "desired-state=running")
		var taskIPs []string
		for _, id := range strings.Fields(tasks) {
			o, _ := e.dockerOut(manager, "inspect", id, "--format", "{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"bank_net\"}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}")
			for _, a := range strings.Fields(o) {
				taskIPs = append(taskIPs, strings.Split(a, "/")[0])
			}
		}
		sort.Strings(taskIPs)
		if fmt.Sprint(newIPs) != fmt.Sprint(taskIPs) {
			t.Errorf("address map targets %v are not the running tasks' addresses %v", newIPs, taskIPs)
		}
		// Nothing left in the nodes' restore areas: used placements consumed, unused
		// ones taken back.
		for i := 1; i <= 3; i++ {
			area := fmt.Sprintf("/var/lib/swarmckpt/%s/%s-%d/docker/swarmckpt/restore", e.name, e.name, i)
			if left, _ := filepath.Glob(filepath.Join(area, "svc-*")); len(left) > 0 {
				t.Errorf("placements left on %s-%d after the restore: %v", e.name, i, left)
			}
		}
		// No duplicates: exactly 5 holder containers run in the whole lab, all swarm tasks.
		type holder struct{ node, id string }
		var holders []holder
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("%s-%d", e.name, i)
			o, _ := e.dockerOut(node, "ps", "-q", "--filter", "name=bank_holder")
			for _, id := range strings.Fields(o) {
				lbl, _ := e.dockerOut(node, "inspect", id, "--format", "{{index .Config.Labels \"com.docker.swarm.task.id\"}}")
				if strings.TrimSpace(lbl) == "" {
					t.Errorf("holder container %s on %s is not a swarm task", id, node)
				}
				holders = append(holders, holder{node, id})
			}
		}
		if len(holders) != 5 {
			t.Fatalf("%d bank holder containers run in the lab, want 5 (no duplicates)", len(holders))
		}
		// The audit reaches the holders by the service's short name: the total holds.
		cmd := exec.Command("docker", "run", "--rm", "--network", "bank_net", "swarmckpt/bank:dev", "query", "--settle", "2m", "--service", "holder", "--count", "5")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.docker(manager))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("restored bank lost or created money (or 'holder' does not resolve):\n%s", tail(string(out), 2500))
		} else {
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "note:") {
					t.Logf("audit %s (swarm's DNS or overlay on the manager lagged behind the restored tasks)", l)
				}
			}
			t.Logf("audit: %s", strings.TrimSpace(tail(string(out), 120)))
		}
		// Transfers continue, on the restored connections (no reset, no reconnect).
		before := map[string]int{}
		for _, h := range holders {
			before[h.id] = e.holderSent(h.node, h.id)
		}
		waitLong(t, "every holder sending more transfers", func() bool {
			for _, h := range holders {
				if e.holderSent(h.node, h.id) <= before[h.id] {
					return false
				}
			}
			return true
		})
		for _, h := range holders {
			lg, _ := e.dockerOut(h.node, "logs", h.id)
			for _, bad := range []string{"reset by peer", "connection to peer lost", "RECONNECT"} {
				if strings.Contains(lg, bad) {
					t.Errorf("restored holder %s on %s: %q in its log:\n%s", h.id, h.node, bad, tail(lg, 1500))
				}
			}
		}
	})

	t.Run("EchoMigratedAsSwarmTasksKeepsItsConnection", func(t *testing.T) {
		e.t = t
		images, _ := lab.ImageDirForTests()
		if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
			filepath.Join(repoRoot(), "deploy", "examples", "echo.yml"), "echo"); code != 0 {
			t.Fatalf("lab deploy echo: %s", out)
		}
		from := ""
		waitLong(t, "echo client healthy before the migration", func() bool {
			for i := 2; i <= 3; i++ {
				n := fmt.Sprintf("%s-%d", e.name, i)
				if st, ok := e.echoStatus(n, "echo_client"); ok && st["healthy"] == true {
					from = n
					return true
				}
			}
			return false
		})
		// The server is pinned to the manager (echo.yml), the client to workers: move the
		// client off its node; both come back as swarm tasks on new addresses.
		out, code := e.ctl(5*time.Minute, "migrate", "echo", "--from", from, "--mode", "swarm")
		if code != 0 {
			t.Fatalf("migrate --mode swarm: exit %d\n%s", code, out)
		}
		t.Logf("migrate output:\n%s", tail(out, 800))
		ps, _ := e.dockerOut(manager, "service", "ps", "echo_client", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}")
		f := strings.Fields(ps)
		if len(strings.Split(strings.TrimSpace(ps), "\n")) != 1 || len(f) < 3 || f[1] == from || f[2] != "Running" {
			t.Fatalf("echo_client tasks after migrating off %s:\n%s", from, ps)
		}
		to := f[1]
		st := e.echoSameConnection(t, to, "echo_client")
		t.Logf("echo client on %s after migrate: seq=%v conn_id=%v gaps=%v max_reply_gap_ms=%v", to, st["seq"], st["conn_id"], st["gaps"], st["max_reply_gap_ms"])
		if _, err := e.dockerOut(manager, "service", "ps", "echo_server"); err != nil {
			t.Errorf("echo_server service gone: %v", err)
		}
	})

	// docs/drain.md: a plain `docker node update --availability drain` moves the task of
	// a stack labelled swarmckpt.on-drain: migrate with its memory: the coordinator armed
	// it, the runtime wrapper held swarm's stop, the node's worker checkpointed it, the
	// set was placed for swarm's replacement on another node, which restored it.
	t.Run("DrainMovesLabelledCounterWithItsState", func(t *testing.T) {
		e.t = t
		images, _ := lab.ImageDirForTests()
		yml := filepath.Join(e.dir, "counter-drain.yml")
		b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "examples", "counter.yml"))
		if err != nil {
			t.Fatal(err)
		}
		labelled := strings.Replace(string(b), `        swarmckpt.enable: "true"`, `        swarmckpt.enable: "true"
        swarmckpt.on-drain: migrate`, 1)
		if labelled == string(b) {
			t.Fatal("counter.yml changed: no swarmckpt.enable label to add on-drain beside")
		}
		if err := os.WriteFile(yml, []byte(labelled), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images, yml, "counter"); code != 0 {
			t.Fatalf("lab deploy counter: %s", out)
		}
		// The running task: node and container.
		task := func() (nodeName, ctr string) {
			out, _ := e.dockerOut(manager, "service", "ps", "counter_counter", "--filter", "desired-state=running",
				"--format", "{{.Node}} {{.CurrentState}}")
			f := strings.Fields(out)
			if len(f) < 2 || f[1] != "Running" {
				return "", ""
			}
			id, _ := e.dockerOut(f[0], "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=counter_counter")
			return f[0], strings.TrimSpace(id)
		}
		info := func(nodeName, ctr string) map[string]any {
			out, err := e.dockerOut(nodeName, "exec", ctr, "/counter", "get", "http://127.0.0.1:8080/info")
			var m map[string]any
			if err != nil || json.Unmarshal([]byte(out), &m) != nil {
				return nil
			}
			return m
		}
		var from, ctr string
		waitLong(t, "counter running", func() bool { from, ctr = task(); return ctr != "" && info(from, ctr) != nil })
		// Armed by the coordinator's policy pass, on service events or the 30 s resync:
		// a service label change (no task restart) is an event once the task runs.
		if out, err := e.dockerOut(manager, "service", "update", "--detach", "--label-add", "test.kick=1", "counter_counter"); err != nil {
			t.Fatalf("service update: %v\n%s", err, out)
		}
		waitLong(t, "counter task armed for drains", func() bool {
			lg, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
			for _, l := range strings.Split(string(lg), "\n") {
				if strings.Contains(l, "tasks armed for drains") && strings.Contains(l, "stack=counter") && strings.Contains(l, "node="+from+" ") {
					return true
				}
			}
			return false
		})
		before := info(from, ctr)
		t.Logf("counter on %s before the drain: %v", from, before)
		t0 := time.Now()
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "drain", from); err != nil {
			t.Fatalf("drain %s: %v\n%s", from, err, out)
		}
		defer func() {
			if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", from); err != nil {
				t.Errorf("set %s active again: %v\n%s", from, err, out)
			}
		}()
		var to, ctr2 string
		var after map[string]any
		waitLong(t, "counter running on another node", func() bool {
			to, ctr2 = task()
			if to == "" || to == from || ctr2 == "" {
				return false
			}
			after = info(to, ctr2)
			return after != nil
		})
		t.Logf("counter on %s %.1fs after the drain of %s: %v", to, time.Since(t0).Seconds(), from, after)
		waitLong(t, "the moved counter armed again on "+to, func() bool {
			lg, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
			for _, l := range strings.Split(string(lg), "\n") {
				if strings.Contains(l, "tasks armed for drains") && strings.Contains(l, "stack=counter") && strings.Contains(l, "node="+to+" ") {
					return true
				}
			}
			return false
		})
		if after["instance"] != before["instance"] {
			t.Errorf("the counter on %s is instance %v, was %v on %s: it restarted fresh instead of being restored (state lost)",
				to, after["instance"], before["instance"], from)
		}
		if av, bv := after["value"].(float64), before["value"].(float64); av < bv {
			t.Errorf("counter value %v on %s after the drain, %v before: state lost", av, to, bv)
		}
		lg, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		for _, l := range strings.Split(string(lg), "\n") {
			if strings.Contains(l, "drain") && (strings.Contains(l, "armed") || strings.Contains(l, "held")) {
				t.Log(l)
			}
		}
		// The coordinator's log says what its event stream says.
		for _, kind := range []string{"task-held", "drain-seen", "checkpointed", "restored"} {
			if !strings.Contains(string(lg), "event: "+kind+" ") {
				t.Errorf("coordinator log has no %q event line after the drain", kind)
			}
		}

		// swarmckpt node drain: the orchestrated path, with swarmckpt events following.
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", from); err != nil {
			t.Fatalf("set %s active again: %v\n%s", from, err, out)
		}
		evs := e.start("events", "events", "--output", "json", "--nats", e.nats, "--data-dir", e.dir)
		defer func() { _ = evs.Process.Signal(os.Interrupt) }()
		waitLong(t, "swarmckpt events following", func() bool {
			b, _ := os.ReadFile(filepath.Join(e.dir, "events.log"))
			return strings.Contains(string(b), "following swarmckpt.v1.events")
		})
		// Issue 16 "only the tasks on NODE stop": a second replica, off `to`, must not
		// stop when `to` is drained with swarmckpt node drain (swarm mode: the drain hold
		// moves the task on `to` alone; the whole-stack migrate would stop both).
		if out, err := e.dockerOut(manager, "service", "scale", "--detach", "counter_counter=2"); err != nil {
			t.Fatalf("scale counter to 2: %v\n%s", err, out)
		}
		type replica struct{ node, id, started string }
		replicas := func() []replica {
			out, _ := e.dockerOut(manager, "service", "ps", "counter_counter", "--filter", "desired-state=running",
				"--format", "{{.Node}} {{.CurrentState}}")
			var rs []replica
			seen := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) < 2 || f[1] != "Running" || seen[f[0]] {
					continue
				}
				seen[f[0]] = true
				ids, _ := e.dockerOut(f[0], "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=counter_counter")
				for _, id := range strings.Fields(ids) {
					st, _ := e.dockerOut(f[0], "inspect", "--format", "{{.State.StartedAt}}", id)
					rs = append(rs, replica{f[0], id, strings.TrimSpace(st)})
				}
			}
			return rs
		}
		var staying []replica
		waitLong(t, "two counter replicas running, one off "+to, func() bool {
			rs := replicas()
			staying = slices.DeleteFunc(rs, func(r replica) bool { return r.node == to })
			return len(rs) == 2 && len(staying) == 1 && info(staying[0].node, staying[0].id) != nil
		})
		t.Logf("staying replica (off %s): %+v", to, staying)
		before = after
		t1 := time.Now()
		out, code := e.ctl(5*time.Minute, "node", "drain", to)
		t.Logf("swarmckpt node drain %s (%.1fs, exit %d):\n%s", to, time.Since(t1).Seconds(), code, out)
		if code != 0 {
			t.Fatalf("node drain %s: exit %d", to, code)
		}
		defer func() {
			if out, code := e.ctl(time.Minute, "node", "activate", to); code != 0 {
				t.Errorf("node activate %s: exit %d\n%s", to, code, out)
			}
		}()
		if !strings.Contains(out, "migrated counter off "+to) || !strings.Contains(out, "node "+to+" is drain") {
			t.Errorf("node drain output lacks the migration or the drain:\n%s", out)
		}
		if av, _ := e.dockerOut(manager, "node", "inspect", "--format", "{{.Spec.Availability}}", to); strings.TrimSpace(av) != "drain" {
			t.Errorf("%s is %q after swarmckpt node drain, want drain", to, strings.TrimSpace(av))
		}
		var to2, ctr3 string
		waitLong(t, "counter running off "+to, func() bool {
			for _, r := range replicas() {
				if r.node != to && r.id != staying[0].id {
					to2, ctr3 = r.node, r.id
				}
			}
			if to2 == "" {
				return false
			}
			after = info(to2, ctr3)
			return after != nil
		})
		// The replica elsewhere never stopped: same container, same start time.
		for _, r := range staying {
			st, err := e.dockerOut(r.node, "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", r.id)
			if err != nil || strings.TrimSpace(st) != "true "+r.started {
				t.Errorf("node drain %s: the counter replica %s on %s stopped (was started %s; now %q, %v): only the tasks on %s may stop",
					to, r.id[:12], r.node, r.started, strings.TrimSpace(st), err, to)
			}
		}
		if !strings.Contains(out, "restored from drain.counter_counter.") {
			t.Errorf("node drain output lacks the held task's restore from its drain set:\n%s", out)
		}
		t.Logf("counter on %s after swarmckpt node drain %s: %v", to2, to, after)
		if after["instance"] != before["instance"] {
			t.Errorf("node drain: the counter on %s is instance %v, was %v: it restarted fresh (state lost)", to2, after["instance"], before["instance"])
		}
		if av, bv := after["value"].(float64), before["value"].(float64); av < bv {
			t.Errorf("node drain: counter value %v on %s, %v before: state lost", av, to2, bv)
		}
		waitLong(t, "swarmckpt events saw the migration and the drain", func() bool {
			b, _ := os.ReadFile(filepath.Join(e.dir, "events.log"))
			return strings.Contains(string(b), `"kind":"migrated"`) && strings.Contains(string(b), `"kind":"node-drain"`)
		})
		evOut, _ := os.ReadFile(filepath.Join(e.dir, "events.log"))
		t.Logf("swarmckpt events:\n%s", evOut)
	})

	// Issue 16, "Only the tasks on NODE stop": a plain drain of the echo client's node
	// moves the client alone (the server on the manager never stops); the client comes
	// back as swarm's replacement on a new address, its images rewritten to it, and the
	// server's namespace translates the old address to the new one, so the client keeps
	// its one TCP connection: same conn_id, no gap, duplicate or reconnect, seq going on.
	t.Run("DrainKeepsEchoConnectionToStayingServer", func(t *testing.T) {
		e.t = t
		// The earlier drains restarted the server fresh (the manager was drained with
		// echo unlabelled): the client is restarted too (--force), so that it starts
		// healthy on its first connection.
		for _, svc := range []string{"echo_server", "echo_client"} {
			args := []string{"service", "update", "--detach", "--label-add", "swarmckpt.on-drain=migrate", svc}
			if svc == "echo_client" {
				args = append(args[:len(args)-1], "--force", svc)
			}
			if out, err := e.dockerOut(manager, args...); err != nil {
				t.Fatalf("label %s: %v\n%s", svc, err, out)
			}
		}
		clientNode := func() string {
			out, _ := e.dockerOut(manager, "service", "ps", "echo_client", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
			f := strings.Fields(out)
			if len(f) < 2 || f[1] != "Running" {
				return ""
			}
			return f[0]
		}
		// The server's running task, wherever swarm placed it (a task that restarts is a
		// new task): asking the manager's own containers only found it when it ran there.
		serverID := func() string {
			out, _ := e.dockerOut(manager, "service", "ps", "echo_server", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}} {{.CurrentState}}")
			f := strings.Fields(out)
			if len(f) < 2 || f[1] != "Running" {
				return ""
			}
			return f[0]
		}
		server := ""
		waitLong(t, "echo server running before the drain", func() bool { server = serverID(); return server != "" })
		from := ""
		var before map[string]any
		waitLong(t, "echo client healthy before the drain", func() bool {
			from = clientNode()
			st, ok := e.echoStatus(from, "echo_client")
			before = st
			return from != "" && ok && st["healthy"] == true
		})
		waitLong(t, "echo client armed for drains on "+from, func() bool {
			id, _ := e.dockerOut(from, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=echo_client")
			lg, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+from+".log"))
			return strings.TrimSpace(id) != "" && strings.Contains(string(lg), "id="+strings.TrimSpace(id)+" ")
		})
		if st, ok := e.echoStatus(from, "echo_client"); ok {
			before = st
		}
		t.Logf("echo client on %s before the drain: seq=%v conn_id=%v", from, before["seq"], before["conn_id"])
		t0 := time.Now()
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "drain", from); err != nil {
			t.Fatalf("drain %s: %v\n%s", from, err, out)
		}
		defer func() {
			if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", from); err != nil {
				t.Errorf("set %s active again: %v\n%s", from, err, out)
			}
		}()
		to := ""
		waitLong(t, "echo client running off "+from, func() bool { to = clientNode(); return to != "" && to != from })
		st := e.echoSameConnection(t, to, "echo_client")
		t.Logf("echo client on %s %.1fs after the drain of %s: seq=%v conn_id=%v gaps=%v max_reply_gap_ms=%v", to, time.Since(t0).Seconds(), from,
			st["seq"], st["conn_id"], st["gaps"], st["max_reply_gap_ms"])
		if sa, sb := st["seq"].(float64), before["seq"].(float64); sa <= sb {
			t.Errorf("echo client seq %v after the drain, %v before: the sequence did not continue", sa, sb)
		}
		if got := serverID(); got != server || got == "" {
			t.Errorf("echo server container %q after the drain, was %q: the staying peer stopped", got, server)
		}
		lg, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		if !regexp.MustCompile(`held task checkpointed and placed.*service=echo_client.*translating_peers=1 `).Match(lg) {
			t.Errorf("coordinator log: no drain of echo_client with 1 translating peer")
		}
		wl, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+manager+".log"))
		if !strings.Contains(string(wl), "address translated for a moved peer") {
			t.Errorf("the server's worker (%s) logged no address translation", manager)
		}

		// Issue 16, the same through `swarmckpt migrate --mode swarm --from NODE`
		// (docs/drain.md "Partial migration in swarm mode"): no drain; a placement
		// constraint makes swarm replace the client's task alone, the drain hold moves
		// it with its connection, the server never stops, and the constraint goes.
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", from); err != nil {
			t.Fatalf("set %s active again: %v\n%s", from, err, out)
		}
		before = st
		t1 := time.Now()
		out, code := e.ctl(5*time.Minute, "migrate", "echo", "--mode", "swarm", "--from", to)
		t.Logf("swarmckpt migrate echo --mode swarm --from %s (%.1fs, exit %d):\n%s", to, time.Since(t1).Seconds(), code, out)
		if code != 0 {
			t.Fatalf("migrate --mode swarm --from %s: exit %d", to, code)
		}
		if !strings.Contains(out, "moved echo_client slot 1 to ") || !strings.Contains(out, "restored from drain.echo_client.1.") {
			t.Errorf("migrate output does not name the moved client task and its set:\n%s", out)
		}
		to2 := ""
		waitLong(t, "echo client running off "+to, func() bool { to2 = clientNode(); return to2 != "" && to2 != to })
		st2 := e.echoSameConnection(t, to2, "echo_client")
		t.Logf("echo client on %s %.1fs after migrate --from %s: seq=%v conn_id=%v max_reply_gap_ms=%v", to2, time.Since(t1).Seconds(), to,
			st2["seq"], st2["conn_id"], st2["max_reply_gap_ms"])
		if sa, sb := st2["seq"].(float64), before["seq"].(float64); sa <= sb {
			t.Errorf("echo client seq %v after the migration, %v before: the sequence did not continue", sa, sb)
		}
		if got := serverID(); got != server || got == "" {
			t.Errorf("echo server container %q after the migration, was %q: the staying peer stopped", got, server)
		}
		for _, svc := range []string{"echo_client", "echo_server"} {
			c, err := e.dockerOut(manager, "service", "inspect", "-f", "{{json .Spec.TaskTemplate.Placement.Constraints}}", svc)
			if err != nil || strings.Contains(c, "node.hostname!="+to) {
				t.Errorf("service %s keeps the migration's constraint (or cannot be read: %v): %s", svc, err, c)
			}
		}
		if av, _ := e.dockerOut(manager, "node", "inspect", "--format", "{{.Spec.Availability}}", to); strings.TrimSpace(av) != "active" {
			t.Errorf("%s is %q after migrate --from: a migration must not drain the node", to, strings.TrimSpace(av))
		}

		// Issue 19, the same with --copy direct: the held stop is dumped straight into
		// the node swarm placed the replacement on (no set written on the source), and
		// the client keeps its connection.
		before = st2
		t2 := time.Now()
		out, code = e.ctl(5*time.Minute, "migrate", "echo", "--mode", "swarm", "--copy", "direct", "--from", to2)
		t.Logf("swarmckpt migrate echo --mode swarm --copy direct --from %s (%.1fs, exit %d):\n%s", to2, time.Since(t2).Seconds(), code, out)
		if code != 0 {
			t.Fatalf("migrate --mode swarm --copy direct --from %s: exit %d", to2, code)
		}
		if !strings.Contains(out, "moved echo_client slot 1 to ") || !strings.Contains(out, "(copy direct)") || !strings.Contains(out, "copy: direct") {
			t.Errorf("migrate output does not name the moved client task as copied direct:\n%s", out)
		}
		to3 := ""
		waitLong(t, "echo client running off "+to2, func() bool { to3 = clientNode(); return to3 != "" && to3 != to2 })
		st3 := e.echoSameConnection(t, to3, "echo_client")
		t.Logf("echo client on %s %.1fs after migrate --copy direct --from %s: seq=%v conn_id=%v max_reply_gap_ms=%v", to3, time.Since(t2).Seconds(), to2,
			st3["seq"], st3["conn_id"], st3["max_reply_gap_ms"])
		if sa, sb := st3["seq"].(float64), before["seq"].(float64); sa <= sb {
			t.Errorf("echo client seq %v after the direct migration, %v before: the sequence did not continue", sa, sb)
		}
		if got := serverID(); got != server || got == "" {
			t.Errorf("echo server container %q after the direct migration, was %q: the staying peer stopped", got, server)
		}
		if wl, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+to2+".log")); !strings.Contains(string(wl), "held container checkpointed straight into another node") {
			t.Errorf("the source's worker (%s) did not log a direct checkpoint of the held client", to2)
		}

		// And a plain drain of the client's node once the stack's label says
		// swarmckpt.migration: direct (a service label change restarts no task): the
		// drain hold copies direct too.
		if out, err := e.dockerOut(manager, "service", "update", "--detach", "--label-add", "swarmckpt.migration=direct", "echo_client"); err != nil {
			t.Fatalf("label echo_client swarmckpt.migration=direct: %v\n%s", err, out)
		}
		waitLong(t, "echo client armed for drains on "+to3, func() bool {
			id, _ := e.dockerOut(to3, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=echo_client")
			lg, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+to3+".log"))
			return strings.TrimSpace(id) != "" && strings.Contains(string(lg), "id="+strings.TrimSpace(id)+" ")
		})
		restoredDirect := regexp.MustCompile(`event: restored [^\n]*service=echo_client[^\n]*copy=direct`)
		lg, _ = os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		directBefore := len(restoredDirect.FindAll(lg, -1))
		before = st3
		t3 := time.Now()
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "drain", to3); err != nil {
			t.Fatalf("drain %s: %v\n%s", to3, err, out)
		}
		defer func() {
			if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", to3); err != nil {
				t.Errorf("set %s active again: %v\n%s", to3, err, out)
			}
		}()
		to4 := ""
		waitLong(t, "echo client running off "+to3, func() bool { to4 = clientNode(); return to4 != "" && to4 != to3 })
		running := time.Since(t3)
		st4 := e.echoSameConnection(t, to4, "echo_client")
		t.Logf("echo client on %s: running %.1fs, answering %.1fs after the drain of %s (label migration: direct): seq=%v conn_id=%v max_reply_gap_ms=%v", to4,
			running.Seconds(), time.Since(t3).Seconds(), to3, st4["seq"], st4["conn_id"], st4["max_reply_gap_ms"])
		if sa, sb := st4["seq"].(float64), before["seq"].(float64); sa <= sb {
			t.Errorf("echo client seq %v after the labelled drain, %v before: the sequence did not continue", sa, sb)
		}
		waitLong(t, "a restored event of echo_client with copy=direct for the drain", func() bool {
			lg, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
			return len(restoredDirect.FindAll(lg, -1)) > directBefore
		})
		lg, _ = os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		var evs []string
		for _, l := range strings.Split(string(lg), "\n") {
			if strings.Contains(l, "event: ") && strings.Contains(l, "echo_client") {
				evs = append(evs, l)
			}
		}
		t.Logf("the labelled drain's events:\n%s", strings.Join(evs[max(0, len(evs)-4):], "\n"))
		// Where the time went (docs/drain.md "Where a drain's time goes"): each step's
		// first log line after the drain, in seconds from it.
		t.Logf("the labelled drain's phases, s from the drain of %s: %s; echo client running (service ps) %.1f, answering %.1f",
			to3, e.drainPhases(t3, to3, to4), running.Seconds(), time.Since(t3).Seconds())

		// The same shape through `swarmckpt node drain` (docs/drain.md "Network keepers
		// of the drain hold"): the client has just left to3 (its network too, unless the
		// server runs there); the drain first has every other node keep the client's
		// networks (keepers), then drains to4; the replacement's node joins no network
		// on the downtime. The keepers are gone once the client runs.
		if out, err := e.dockerOut(manager, "node", "update", "--availability", "active", to3); err != nil {
			t.Fatalf("set %s active again: %v\n%s", to3, err, out)
		}
		waitLong(t, "echo client armed for drains on "+to4, func() bool {
			id, _ := e.dockerOut(to4, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=echo_client")
			lg, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+to4+".log"))
			return strings.TrimSpace(id) != "" && strings.Contains(string(lg), "id="+strings.TrimSpace(id)+" ")
		})
		before = st4
		t5 := time.Now()
		out, code = e.ctl(5*time.Minute, "node", "drain", to4)
		t.Logf("swarmckpt node drain %s (%.1fs, exit %d):\n%s", to4, time.Since(t5).Seconds(), code, out)
		if code != 0 {
			t.Fatalf("node drain %s: exit %d", to4, code)
		}
		defer func() {
			if out, code := e.ctl(time.Minute, "node", "activate", to4); code != 0 {
				t.Errorf("node activate %s: exit %d\n%s", to4, code, out)
			}
		}()
		to5 := ""
		waitLong(t, "echo client running off "+to4, func() bool { to5 = clientNode(); return to5 != "" && to5 != to4 })
		st5 := e.echoSameConnection(t, to5, "echo_client")
		t.Logf("echo client on %s %.1fs after swarmckpt node drain %s: seq=%v conn_id=%v max_reply_gap_ms=%v", to5, time.Since(t5).Seconds(), to4,
			st5["seq"], st5["conn_id"], st5["max_reply_gap_ms"])
		if sa, sb := st5["seq"].(float64), before["seq"].(float64); sa <= sb {
			t.Errorf("echo client seq %v after node drain, %v before: the sequence did not continue", sa, sb)
		}
		if wl, _ := os.ReadFile(filepath.Join(e.dir, "worker-"+to5+".log")); !strings.Contains(string(wl), "network keeper started") {
			t.Errorf("the replacement's node (%s) started no network keeper for the drain hold", to5)
		}
		waitLong(t, "the drain hold's network keepers on "+to5+" removed", func() bool {
			out, err := e.dockerOut(to5, "ps", "-aq", "--filter", "label=io.swarmckpt.keeper")
			return err == nil && strings.TrimSpace(out) == ""
		})
		lg, _ = os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		ready := "-"
		if m := regexp.MustCompile(`nodes ready for the drain hold[^\n]*seconds=([0-9.]+)`).FindAllSubmatch(lg, -1); len(m) > 0 {
			ready = string(m[len(m)-1][1])
		}
		t.Logf("swarmckpt node drain's phases, s from the command (keepers ready after %s s, then the drain): %s", ready, e.drainPhases(t5, to4, to5))
	})
}

// drainPhases says when (seconds from t0, "-" when not seen) each step of the drain
// of the echo client from node from to node to happened: the held stop, the
// checkpoint, the set placed (then the stop released), the replacement's container
// created and started (restored), its unlock or the coordinator giving up on it
// (then the target's watchdog lifts the lock at its deadline), and a timed-out bulk
// sync of libnetwork on the target.
func (e *e2e) drainPhases(t0 time.Time, from, to string) string {
	at := func(file string, match ...string) string {
		if !filepath.IsAbs(file) {
			file = filepath.Join(e.dir, file)
		}
		b, _ := os.ReadFile(file)
		for _, l := range strings.Split(string(b), "\n") {
			ok := true
			for _, m := range match {
				ok = ok && strings.Contains(l, m)
			}
			if !ok {
				continue
			}
			ts := ""
			if i := strings.Index(l, "time="); i >= 0 {
				ts = strings.Trim(strings.Fields(l[i+len("time="):])[0], `"`) // slog's, or dockerd's time="..."
			} else if i := strings.Index(l, `"time":"`); i >= 0 {
				ts, _, _ = strings.Cut(l[i+len(`"time":"`):], `"`)
			}
			if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil && !tm.Before(t0) {
				return fmt.Sprintf("%.2f", tm.Sub(t0).Seconds())
			}
		}
		return "-"
	}
	// The replacement's container: created by swarm's executor once the old task
	// ended, started (restored by the runtime wrapper) after its network attachment.
	created, started := "-", "-"
	id, _ := e.dockerOut(to, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=echo_client")
	if f := strings.Fields(id); len(f) == 1 {
		out, _ := e.dockerOut(to, "inspect", "--format", "{{.Created}} {{.State.StartedAt}}", f[0])
		if ts := strings.Fields(out); len(ts) == 2 {
			for i, p := range []*string{&created, &started} {
				if tm, err := time.Parse(time.RFC3339Nano, ts[i]); err == nil {
					*p = fmt.Sprintf("%.2f", tm.Sub(t0).Seconds())
				}
			}
		}
	}
	return strings.Join([]string{
		"held " + at("agent-"+from+".log", "stop held for a drain", "echo_client"),
		"checkpointed " + at("coordinator.log", "event: checkpointed", "service=echo_client"),
		"placed " + at("coordinator.log", "event: restored", "service=echo_client"),
		"created " + created, "started " + started,
		"unlocked " + at("coordinator.log", "drain: replacement restored and unlocked", "service=echo_client"),
		"unlock-given-up " + at("coordinator.log", "drain: ", "service=echo_client", "watchdog unlocks it at the lock's deadline"),
		// libnetwork's overlay join on the target waits up to 30 s for a peer's bulk
		// sync (docs/drain.md "Where a drain's time goes").
		"target-bulk-sync-timed-out " + at(filepath.Join("/var/lib/swarmckpt", e.name, to, "dockerd.log"), "Bulk sync to node", "timed out"),
	}, " ")
}

package coordinator_test

// A stack restored in exact mode runs as standalone containers with its services at 0
// replicas: it must snapshot, restore and migrate again like a deployed one
// (docs/restore.md "Restoring a restored stack"). Subtests of TestIntegrationE2E.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// dockerOn is dockerOut with the output trimmed.
func (e *e2e) dockerOn(node string, args ...string) (string, error) {
	out, err := e.dockerOut(node, args...)
	return strings.TrimSpace(out), err
}

func (e *e2e) node(i int) string { return fmt.Sprintf("%s-%d", e.name, i) }

// restoredOf lists the standalone containers restored for service on every node
// (running only unless all), node -> full IDs.
func (e *e2e) restoredOf(service string, all bool) map[string][]string {
	out := map[string][]string{}
	for i := 1; i <= 3; i++ {
		args := []string{"ps", "-q", "--no-trunc", "--filter", "label=io.swarmckpt.service=" + service}
		if all {
			args = append(args, "-a")
		}
		ids, err := e.dockerOn(e.node(i), args...)
		if err != nil {
			e.t.Fatalf("docker ps on %s: %v: %s", e.node(i), err, ids)
		}
		if f := strings.Fields(ids); len(f) > 0 {
			out[e.node(i)] = f
		}
	}
	return out
}

func count(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// bankRestoredOK audits the bank (money neither lost nor created, holders found as
// 'holder') and requires that no holder container in ids (node -> IDs) logged a reset.
func (e *e2e) bankRestoredOK(t *testing.T, ids map[string][]string) {
	t.Helper()
	// The audit finds the holders by DNS on node 1. Holders restored on other nodes
	// become known there through the overlay's gossip, which can lag the restore by
	// seconds: an audit that does not find every holder ("did not answer") is retried
	// for up to 2 minutes, and how long that took is logged. Money lost or created
	// with every holder found fails at once.
	start := time.Now()
	for attempt := 1; ; attempt++ {
		cmd := exec.Command("docker", "run", "--rm", "--network", "bank_net", "swarmckpt/bank:dev", "query", "--settle", "2m",
			"--service", "holder", "--count", "5")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.docker(e.node(1)))
		out, err := cmd.CombinedOutput()
		if err == nil {
			if attempt > 1 {
				t.Logf("bank audit OK at attempt %d, %.1f s after the first: every holder found by DNS only then", attempt, time.Since(start).Seconds())
			}
			break
		}
		// A holder the auditing node cannot reach yet (its overlay peer entries lag like
		// its names, docs/restore.md) shows as "did not answer" or as a pause timing out.
		unreachable := strings.Contains(string(out), "did not answer") || strings.Contains(string(out), "pausing holders")
		if !unreachable || time.Since(start) > 2*time.Minute {
			t.Fatalf("restored bank lost or created money (or its holders are not found as 'holder'), attempt %d:\n%s", attempt, tail(string(out), 2500))
		}
		if attempt == 1 {
			t.Logf("bank audit did not find every holder by DNS; retrying:\n%s", tail(string(out), 800))
		}
		time.Sleep(2 * time.Second)
	}
	for node, list := range ids {
		for _, id := range list {
			lg, err := e.dockerOn(node, "logs", id)
			if err != nil {
				t.Errorf("logs of holder %.12s on %s: %v", id, node, err)
			}
			for _, bad := range []string{"reset by peer", "connection to peer lost", "RECONNECT"} {
				if strings.Contains(lg, bad) {
					t.Errorf("holder %.12s on %s: %q in its log (a connection did not survive):\n%s", id, node, bad, tail(lg, 1500))
				}
			}
		}
	}
}

// restoredBankAgain: snapshot the exactly restored bank, restore that snapshot exactly
// over it (the earlier restore's containers go, their addresses are reused), then in
// swarm mode (the standalone containers go, swarm tasks come back).
func (e *e2e) restoredBankAgain(t *testing.T) {
	e.t = t
	if _, err := os.Stat(hostBusybox); err != nil {
		t.Fatalf("no %s on this machine (make setup installs busybox-static): the DNS check needs its nslookup", hostBusybox)
	}
	before := e.restoredOf("bank_holder", false)
	if count(before) != 5 {
		// Run alone (-run .../RestoredBankAgain): restore the bank exactly first.
		if out, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", "bank-pre"); code != 0 {
			t.Fatalf("snapshot: exit %d\n%s", code, out)
		}
		if out, code := e.ctl(5*time.Minute, "restore", "bank-pre"); code != 0 {
			t.Fatalf("restore: exit %d\n%s", code, out)
		}
		before = e.restoredOf("bank_holder", false)
		if count(before) != 5 {
			t.Fatalf("after an exact restore: restored holders %v, want 5", before)
		}
	}

	// 1. Snapshot: each restored container is found on its node as the slot it was
	// restored as, with its address.
	out, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", "bank-again")
	if code != 0 {
		t.Fatalf("snapshot of the restored bank: exit %d\n%s", code, out)
	}
	m := e.manifest("bank-again")
	if len(m.Containers) != 5 {
		t.Fatalf("snapshot of the restored bank has %d containers, want 5: %+v", len(m.Containers), m.Containers)
	}
	var keys []string
	for _, c := range m.Containers {
		keys = append(keys, c.Key())
		if !slices.Contains(before[c.Node], c.ContainerID) {
			t.Errorf("%s: container %.12s on %s is not one of the restored holders there (%v)", c.Key(), c.ContainerID, c.Node, before[c.Node])
			continue
		}
		name, _ := e.dockerOn(c.Node, "inspect", "-f", "{{.Name}}", c.ContainerID)
		ip, _ := e.dockerOn(c.Node, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", c.ContainerID)
		if !strings.HasPrefix(name, "/"+strings.ReplaceAll(c.Key(), ".", "-")+"-") || len(c.IPs) == 0 || !strings.Contains(ip, c.IPs[0]) {
			t.Errorf("%s recorded as %.12s with IPs %v; the container is %s with %q", c.Key(), c.ContainerID, c.IPs, name, ip)
		}
	}
	var seen []string
	for _, c := range m.Containers {
		seen = append(seen, fmt.Sprintf("%s@%s/%.12s/%s", c.Key(), c.Node, c.ContainerID, strings.Join(c.IPs, ",")))
	}
	t.Logf("snapshot bank-again of the restored bank: %s", strings.Join(seen, " "))
	if strings.Join(keys, " ") != "bank_holder.1 bank_holder.2 bank_holder.3 bank_holder.4 bank_holder.5" {
		t.Errorf("snapshot keys %v", keys)
	}
	if vout, code := e.ctl(time.Minute, "inspect", "bank-again", "--verify"); code != 0 || !strings.Contains(vout, "cut check: consistent") {
		t.Fatalf("inspect --verify: exit %d\n%s", code, vout)
	}

	// 2. Exact restore over the running exact restore (on other nodes: default).
	if out, code := e.ctl(5*time.Minute, "restore", "bank-again"); code != 0 {
		t.Fatalf("exact restore over the restored bank: exit %d\n%s", code, out)
	}
	after := e.restoredOf("bank_holder", true)
	t.Logf("exact restore over the exact restore: holders before %v, after %v", short(before), short(after))
	if count(after) != 5 {
		t.Errorf("after the second exact restore: %v restored holders (any state), want exactly the 5 new ones", after)
	}
	for node, ids := range before {
		for _, id := range ids {
			if slices.Contains(after[node], id) {
				t.Errorf("the earlier restore's holder %.12s is still on %s", id, node)
			}
		}
	}
	// Every node must resolve the alias to the 5 new holders. Known lag, not fixed
	// (docs/restore.md "Restoring a restored stack"): in about 1 run in 3 a node that
	// left the network and joined it again is not seen as a member of it by its peers'
	// network DB, which then drop its endpoints and send it none of theirs until
	// memberlist's push-pull (every 30 s, with a random peer) merges the membership
	// again: 44-78 s measured. 2 minutes covers 4 push-pull rounds; the time is logged
	// and, on a miss, each node's network DB view (peers, endpoints).
	took := e.nameResolvesEverywhere(t, "bank_net", "holder", after, 2*time.Minute)
	t.Logf("DNS: holder resolved to the 5 restored holders on every node %.1f s after the restore", took.Seconds())
	// The service's other names too (the same endpoint entries carry them, so no new
	// lag): with the service at 0 replicas, swarm answers none of them itself, and
	// tasks.<name> would time out without the aliases (docs/restore.md "Aliases").
	for _, name := range swarmNames[1:] {
		took := e.nameResolvesEverywhere(t, "bank_net", name, after, 30*time.Second)
		t.Logf("DNS: %s resolved to the 5 restored holders on every node %.1f s after holder did", name, took.Seconds())
	}
	e.bankRestoredOK(t, after)

	// 3. Swarm-mode restore of the same snapshot over it: the standalone containers go,
	// five swarm tasks run from the snapshot; the address map is recorded.
	if out, code := e.ctl(5*time.Minute, "restore", "bank-again", "--mode", "swarm"); code != 0 {
		t.Fatalf("swarm-mode restore over the restored bank: exit %d\n%s", code, out)
	}
	if left := e.restoredOf("bank_holder", true); count(left) != 0 {
		t.Errorf("standalone holders left next to the swarm tasks: %v", left)
	}
	ps, err := e.dockerOn(e.node(1), "service", "ps", "bank_holder", "-q", "--filter", "desired-state=running")
	if err != nil || len(strings.Fields(ps)) != 5 {
		t.Errorf("swarm runs %q bank_holder tasks (%v), want 5", ps, err)
	}
	tasks := map[string][]string{}
	for i := 1; i <= 3; i++ {
		ids, _ := e.dockerOn(e.node(i), "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.service.name=bank_holder")
		if f := strings.Fields(ids); len(f) > 0 {
			tasks[e.node(i)] = f
		}
	}
	e.bankRestoredOK(t, tasks)
	m = e.manifest("bank-again")
	last := m.Restores[len(m.Restores)-1]
	t.Logf("swarm-mode restore: tasks %v, address map %v", short(tasks), last.Addresses)
	if !last.OK || last.Mode != "swarm" || len(last.Addresses) < 5 {
		t.Errorf("swarm-mode restore record %+v, want OK, mode swarm, an address per holder", last)
	}
	if text, _ := e.ctl(20*time.Second, "inspect", "bank-again"); !strings.Contains(text, "restored --mode swarm") || !strings.Contains(text, "  addresses: ") {
		t.Errorf("inspect does not show the swarm restore's address map:\n%s", text)
	}
}

// short is m with 12-character IDs (for logs).
func short(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		for _, id := range v {
			out[k] = append(out[k], id[:min(12, len(id))])
		}
	}
	return out
}

// echoStatus is the /status of the echo container whose name contains name on node.
func (e *e2e) echoStatus(node, name string) (map[string]any, bool) {
	id, err := e.dockerOn(node, "ps", "-q", "--filter", "name="+name)
	if err != nil || id == "" {
		return nil, false
	}
	out, err := e.dockerOn(node, "exec", strings.Fields(id)[0], "/echo", "get", "/status")
	if err != nil {
		return nil, false
	}
	var st map[string]any
	if json.Unmarshal([]byte(out), &st) != nil {
		return nil, false
	}
	return st, true
}

// echoSameConnection waits for the echo client on node to answer and fails the test
// unless it kept its first TCP connection with no gap, duplicate or reconnect; it
// returns the client's status.
func (e *e2e) echoSameConnection(t *testing.T, node, name string) map[string]any {
	t.Helper()
	var st map[string]any
	waitLong(t, "echo client answering on "+node, func() bool {
		s, ok := e.echoStatus(node, name)
		if ok && s["healthy"] == true {
			st = s
			return true
		}
		return false
	})
	for _, k := range []string{"reconnects", "gaps", "duplicates", "lost_on_reconnect"} {
		if v, _ := st[k].(float64); v != 0 {
			t.Errorf("%s = %v, want 0 (status %v)", k, v, st)
		}
	}
	if v, _ := st["conn_id"].(float64); v != 1 {
		t.Errorf("conn_id = %v: the client reconnected instead of keeping its TCP connection", v)
	}
	return st
}

// migrateRestoredEchoAgain: the echo stack, migrated (exact) once, migrates again
// (exact), then in swarm mode away from the client's node; the client keeps its first
// connection throughout, and the swarm-mode migration leaves no placement constraint
// on the services and no task restarted by its removal.
func (e *e2e) migrateRestoredEchoAgain(t *testing.T) {
	e.t = t
	if count(e.restoredOf("echo_client", false)) != 1 {
		// Run alone: deploy echo and migrate it once.
		images, _ := lab.ImageDirForTests()
		if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
			filepath.Join(repoRoot(), "deploy", "examples", "echo.yml"), "echo"); code != 0 {
			t.Fatalf("lab deploy echo: %s", out)
		}
		waitLong(t, "echo client healthy", func() bool {
			for i := 1; i <= 3; i++ {
				if st, ok := e.echoStatus(e.node(i), "echo_client"); ok && st["healthy"] == true {
					return true
				}
			}
			return false
		})
		if out, code := e.ctl(5*time.Minute, "migrate", "echo", "--to", e.node(3)); code != 0 {
			t.Fatalf("migrate: exit %d\n%s", code, out)
		}
	}
	// Exact, to lab-2: both restored containers move (server and client).
	if out, code := e.ctl(5*time.Minute, "migrate", "echo", "--to", e.node(2)); code != 0 {
		t.Fatalf("migrate of the restored echo: exit %d\n%s", code, out)
	}
	e.echoSameConnection(t, e.node(2), "echo_client-1-")
	t.Logf("restored echo migrated again (exact) to %s: client %v", e.node(2), short(e.restoredOf("echo_client", false)))
	if all := e.restoredOf("echo_client", true); count(all) != 1 || len(all[e.node(2)]) != 1 {
		t.Errorf("echo clients after the second migration: %v, want one, on %s", all, e.node(2))
	}

	// Swarm mode, away from lab-2: the server goes to the manager (its own constraint),
	// the client to lab-3.
	if out, code := e.ctl(5*time.Minute, "migrate", "echo", "--from", e.node(2), "--mode", "swarm"); code != 0 {
		t.Fatalf("swarm-mode migrate of the restored echo: exit %d\n%s", code, out)
	}
	if all := e.restoredOf("echo_client", true); count(all) != 0 {
		t.Errorf("standalone echo clients left after the swarm-mode migration: %v", all)
	}
	if all := e.restoredOf("echo_server", true); count(all) != 0 {
		t.Errorf("standalone echo servers left after the swarm-mode migration: %v", all)
	}
	e.echoSameConnection(t, e.node(3), "echo_client.1.")
	taskIDs := func() string {
		out, _ := e.dockerOn(e.node(1), "service", "ps", "-q", "--filter", "desired-state=running", "echo_client", "echo_server")
		f := strings.Fields(out)
		slices.Sort(f)
		return strings.Join(f, " ")
	}
	t0 := taskIDs()
	t.Logf("swarm-mode migrate from %s: running tasks %s", e.node(2), t0)
	for _, svc := range []string{"echo_client", "echo_server"} {
		c, err := e.dockerOn(e.node(1), "service", "inspect", "-f", "{{json .Spec.TaskTemplate.Placement.Constraints}}", svc)
		if err != nil || strings.Contains(c, "node.hostname") {
			t.Errorf("service %s placement constraints %s (%v): the migration's constraint was not removed", svc, c, err)
		}
	}
	// Removing the constraint must not make swarm replace the restored tasks.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if now := taskIDs(); now != t0 || len(strings.Fields(now)) != 2 {
			t.Fatalf("running echo tasks changed after the constraint was removed: %q -> %q", t0, now)
		}
		time.Sleep(time.Second)
	}
	e.echoSameConnection(t, e.node(3), "echo_client.1.")
	st, _ := e.echoStatus(e.node(3), "echo_client.1.")
	t.Logf("after the constraint removal: tasks %s unchanged for 10 s; client status %v", t0, st)
}

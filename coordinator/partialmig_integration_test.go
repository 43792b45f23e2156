package coordinator_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// bankHolder is one running bank holder container (swarm task or standalone).
type bankHolder struct {
	node, id, pid, started string
}

// bankHolders lists the running bank holder containers of every node, by container id.
func (e *e2e) bankHolders(t *testing.T) map[string]bankHolder {
	t.Helper()
	out := map[string]bankHolder{}
	for i := 1; i <= 3; i++ {
		n := e.node(i)
		ids, err := e.dockerOut(n, "ps", "-q", "--no-trunc", "--filter", "name=bank_holder")
		if err != nil {
			t.Fatalf("docker ps on %s: %v\n%s", n, err, ids)
		}
		for _, id := range strings.Fields(ids) {
			st, err := e.dockerOut(n, "inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", id)
			f := strings.Fields(st)
			if err != nil || len(f) != 2 {
				continue // gone meanwhile
			}
			out[id] = bankHolder{node: n, id: id, pid: f[0], started: f[1]}
		}
	}
	return out
}

// partialMigrateBank: `migrate bank --from NODE` (exact mode; partial is the default)
// moves only the holders on NODE: the migration's snapshot holds only them, they run
// again elsewhere (spread: the holders balanced over the nodes left), and the
// holders on the other nodes never stop (same container, same PID and start time,
// never in the snapshot, so never locked or frozen) and keep sending. Every
// connection keeps its sequence (no reset, reconnect or out-of-sequence transfer in
// any holder's log or the audit) and the total is conserved. The downtimes are printed.
// A staying task finds every holder, the moved ones too, under each of the service's
// names and opens new connections to them (movedFoundByName).
func (e *e2e) partialMigrateBank(t *testing.T) {
	e.t = t
	waitLong(t, "bank healthy and meshed before the partial migration", e.bankMeshed)
	before := e.bankHolders(t)
	if len(before) != 5 {
		t.Fatalf("%d bank holders run, want 5: %v", len(before), before)
	}
	perNode := map[string]int{}
	for _, h := range before {
		perNode[h.node]++
	}
	from := ""
	for _, n := range []string{e.node(2), e.node(3), e.node(1)} { // one with holders, not all of them
		if perNode[n] > 0 && perNode[n] < 5 {
			from = n
			break
		}
	}
	if from == "" {
		t.Fatalf("no node runs some but not all holders: %v", perNode)
	}
	staying := map[string]bankHolder{}
	sentBefore := map[string]int{}
	for id, h := range before {
		if h.node != from {
			staying[id] = h
			sentBefore[id] = e.holderSent(h.node, id)
		}
	}
	t0 := time.Now()
	out, code := e.ctl(5*time.Minute, "migrate", "bank", "--from", from, "--output", "json")
	took := time.Since(t0)
	if code != 0 {
		t.Fatalf("migrate bank --from %s: exit %d\n%s", from, code, out)
	}
	var res api.MigrateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Snapshot == nil || res.Restore == nil {
		t.Fatalf("migrate output (%v):\n%s", err, tail(out, 2000))
	}
	moved := perNode[from]
	m := res.Snapshot
	if !m.Partial || len(m.Containers) != moved {
		t.Fatalf("snapshot %s: partial %v with %d containers, want partial with the %d holders of %s", m.ID, m.Partial, len(m.Containers), moved, from)
	}
	for _, c := range m.Containers {
		if c.Node != from {
			t.Errorf("snapshot took %s on %s: only the holders of %s may be locked, frozen or dumped", c.Key(), c.Node, from)
		}
	}
	targets := res.Restore.Targets
	for k, n := range targets {
		if n == from {
			t.Errorf("%s restored on %s, the node it left", k, n)
		}
	}
	after := e.bankHolders(t)
	if len(after) != 5 {
		t.Fatalf("%d bank holders run after the partial migration, want 5: %v", len(after), after)
	}
	for id, h := range staying {
		a, ok := after[id]
		if !ok || a.pid != h.pid || a.started != h.started || a.node != h.node {
			t.Errorf("staying holder %.12s on %s stopped or restarted: before %+v, after %+v (found %v)", id, h.node, h, a, ok)
		}
	}
	// Spread: the holders end up balanced over the nodes left (the moved ones were not
	// piled onto one node while another had fewer).
	counts := countNodes(after)
	if counts[from] != 0 {
		t.Errorf("%d holders still run on %s after migrating off it", counts[from], from)
	}
	lo, hi := 5, 0
	for i := 1; i <= 3; i++ {
		if n := e.node(i); n != from {
			lo, hi = min(lo, counts[n]), max(hi, counts[n])
		}
	}
	if hi-lo > 1 {
		t.Errorf("holders per node after the partial migration %v (targets %v): not spread over the nodes left", counts, targets)
	}
	// No duplicate slot: swarm wants running exactly the staying tasks it ran (a scale
	// -down that removed a staying slot would leave a moved slot's fresh replacement).
	ps, _ := e.dockerOut(e.node(1), "service", "ps", "bank_holder", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}")
	swarmTasks := 0
	for _, h := range before {
		if lbl, _ := e.dockerOut(h.node, "inspect", "-f", "{{index .Config.Labels \"com.docker.swarm.task.id\"}}", h.id); strings.TrimSpace(lbl) != "" && h.node != from {
			swarmTasks++
		}
	}
	if n := len(strings.Fields(strings.ReplaceAll(ps, " ", "_"))); n != swarmTasks { // one line per task
		t.Errorf("swarm wants %d bank_holder tasks running after the partial migration, want the %d staying ones:\n%s", n, swarmTasks, ps)
	}
	t.Logf("after the partial migration: holders per node %v; swarm's tasks:\n%s", counts, ps)
	// Staying holders kept sending (on the connections among themselves, and to the
	// moved ones once those ran again).
	waitLong(t, "every staying holder sending more transfers", func() bool {
		for id, h := range staying {
			if e.holderSent(h.node, id) <= sentBefore[id] {
				return false
			}
		}
		return true
	})
	ids := map[string][]string{}
	for id, h := range after {
		ids[h.node] = append(ids[h.node], id)
	}
	e.bankRestoredOK(t, ids) // audit: total conserved, no transfer out of sequence; no reset in any log
	e.movedFoundByName(t, staying, ids)
	for id, h := range after {
		lg, _ := e.dockerOut(h.node, "logs", id)
		for _, bad := range []string{"reset by peer", "connection to peer lost", "RECONNECT", "anomalies=1", "seq_anomalies"} {
			if strings.Contains(lg, bad) {
				t.Errorf("holder %.12s on %s: %q in its log:\n%s", id, h.node, bad, tail(lg, 1500))
			}
		}
	}
	var movedKeys []string
	for _, c := range m.Containers {
		movedKeys = append(movedKeys, fmt.Sprintf("%s %s->%s (frozen %d ms, dumped %d ms)", c.Key(), c.Node, targets[c.Key()], c.FreezeMS, c.DumpMS))
	}
	slices.Sort(movedKeys)
	t.Logf("partial migration off %s took %.1f s; moved holders down from their dump to running on their target, at most %.1f s (stop and restore %d ms): %s; the %d staying holders: downtime 0 (same PID and start time, never in the snapshot)",
		from, took.Seconds(), took.Seconds(), res.Restore.TotalMS, strings.Join(movedKeys, "; "), len(staying))
}

func countNodes(hs map[string]bankHolder) map[string]int {
	out := map[string]int{}
	for _, h := range hs {
		out[h.node]++
	}
	return out
}

// swarmNames are the names swarm's DNS answers with bank_holder's task addresses: the
// service's name, its compose alias, and tasks.<each> (what clients use to list all tasks).
var swarmNames = []string{"holder", "bank_holder", "tasks.holder", "tasks.bank_holder"}

// movedFoundByName: after a partial migration the moved holders run as standalone
// containers and swarm's service has only the staying tasks, yet a staying task must
// still find every holder under each of the service's names: every name resolves, in
// the staying tasks' own network namespaces (each node's embedded DNS), to the
// addresses of all 5 holders (ids: node -> holder IDs), and a NEW connection from
// inside a staying task, to every address the name gives, exchanges data (`bank
// query` run in the staying task: it pauses, reads and audits every holder it finds by
// the name, and fails if one is missing).
func (e *e2e) movedFoundByName(t *testing.T, staying map[string]bankHolder, ids map[string][]string) {
	if _, err := os.Stat(hostBusybox); err != nil {
		t.Fatalf("no %s on this machine (make setup installs busybox-static): the DNS check needs its nslookup", hostBusybox)
	}
	want := e.ipsOf(t, "bank_net", ids)
	if len(want) != 5 {
		t.Fatalf("bank holders' addresses on bank_net %v, want 5", want)
	}
	perNode := map[string]bankHolder{} // one staying holder per node that has one
	for _, h := range staying {
		perNode[h.node] = h
	}
	start := time.Now()
	for _, name := range swarmNames {
		for _, n := range slices.Sorted(maps.Keys(perNode)) {
			h := perNode[n]
			var got []string
			for {
				var err error
				if got, err = e.resolveOn(n, h.id, name); err != nil {
					t.Fatal(err)
				}
				if slices.Equal(got, want) || time.Since(start) > time.Minute {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !slices.Equal(got, want) {
				t.Errorf("in staying holder %.12s on %s, %s resolves to %v, want every holder %v (the moved ones are standalone containers: they must carry the name as an alias)", h.id, n, name, got, want)
			} else {
				t.Logf("in staying holder %.12s on %s, %s resolves to every holder %v", h.id, n, name, got)
			}
		}
	}
	var h bankHolder
	for _, n := range slices.Sorted(maps.Keys(perNode)) {
		h = perNode[n]
		break
	}
	for _, name := range swarmNames {
		out, err := e.dockerOut(h.node, "exec", h.id, "/bank", "query", "--service", name, "--count", "5", "--json")
		var rep struct {
			Holders []struct {
				ID int `json:"id"`
			} `json:"holders"`
		}
		_, js, _ := strings.Cut(out, "{")
		_ = json.NewDecoder(strings.NewReader("{" + js)).Decode(&rep) // a note may follow the report
		var found []int
		for _, s := range rep.Holders {
			found = append(found, s.ID)
		}
		slices.Sort(found)
		if err != nil || !slices.Equal(found, []int{1, 2, 3, 4, 5}) {
			t.Errorf("bank query --service %s run in staying holder %.12s on %s (new connections to every holder the name gives): holders %v, want 1-5 (%v):\n%s", name, h.id, h.node, found, err, tail(out, 2000))
		} else {
			t.Logf("bank query --service %s in staying holder %.12s on %s: new connections reached holders %v, audit OK", name, h.id, h.node, found)
		}
	}
}

package coordinator_test

// Stacks declare their own protection (issue 15, Done-when 1-4): bank's own compose
// labels schedule chandy-lamport snapshots every 15 s, retain 2, replicas 2: every set
// is on 2 nodes' disks; retention removes the older sets and their copies from the
// nodes' disks; a coordinator killed with -9 between two runs goes on without a
// doubled run; malformed labels (replicas > nodes among them) are an error in `policy`
// and the log, with nothing applied; a restore of a snapshot whose original set was
// deleted by hand uses the copy and says so. Part of TestIntegrationE2E (its lab).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/coordinator/stack/stacktest"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// quietBank writes bank.yml without its schedule, retention, algorithm and replicas labels into
// dir: the lab tests that take their own snapshots deploy it, so that no scheduled
// snapshot runs beside them (policyScheduleAndRetention deploys the real one).
func quietBank(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "examples", "bank.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	dropped := 0
	for _, l := range strings.Split(string(b), "\n") {
		k := strings.TrimSpace(l)
		if strings.HasPrefix(k, policy.KeySchedule+":") || strings.HasPrefix(k, policy.KeyRetain+":") || strings.HasPrefix(k, policy.KeyAlgorithm+":") ||
			strings.HasPrefix(k, policy.KeyReplicas+":") {
			dropped++
			continue
		}
		keep = append(keep, l)
	}
	if dropped != 4 {
		t.Fatalf("bank.yml carries %d of the labels swarmckpt.schedule, retain, algorithm and replicas, want all 4", dropped)
	}
	p := filepath.Join(dir, "bank-quiet.yml")
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// policyOf runs `swarmckpt policy bank --output json`.
func (e *e2e) policyOf(t *testing.T) (*api.StackPolicy, string) {
	out, code := e.ctl(20*time.Second, "policy", "bank", "--output", "json")
	if code != 0 {
		return nil, out
	}
	var res api.PolicyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Stacks) != 1 {
		t.Fatalf("policy --output json: %v\n%s", err, out)
	}
	return &res.Stacks[0], out
}

// scheduledSnapshots lists bank's scheduled snapshots (`ls --output json`).
func (e *e2e) scheduledSnapshots(t *testing.T) []*store.Manifest {
	out, code := e.ctl(20*time.Second, "ls", "bank", "--output", "json")
	if code != 0 {
		t.Fatalf("ls: exit %d\n%s", code, out)
	}
	var ms []*store.Manifest
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("ls --output json: %v\n%s", err, out)
	}
	var s []*store.Manifest
	for _, m := range ms {
		if policy.Scheduled(m) {
			s = append(s, m)
		}
	}
	return s
}

func (e *e2e) policyScheduleAndRetention(t *testing.T) {
	e.t = t
	images, err := lab.ImageDirForTests()
	if err != nil {
		t.Fatal(err)
	}
	deploy := func(file string) {
		t.Helper()
		if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images, file, "bank"); code != 0 {
			t.Fatalf("lab deploy %s: %s", file, out)
		}
	}
	// The label source on the real manager passes the conformance suite.
	dk, err := stack.NewDocker(e.docker(e.name + "-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Close()
	stacktest.Labels(t, dk, "bank", "bank_holder", func(k, v string) {
		if out, err := e.dockerOut(e.name+"-1", "service", "update", "--detach", "--label-add", k+"="+v, "bank_holder"); err != nil {
			t.Fatalf("service update: %v\n%s", err, out)
		}
	})

	// 3. Malformed labels: errors in `policy` and the log; nothing applied.
	if out, err := e.dockerOut(e.name+"-1", "service", "update", "--detach", "--label-add", "swarmckpt.schedule=@every 15s",
		"--label-add", "swarmckpt.retain=-1", "--label-add", "swarmckpt.replicas=5", "--label-add", "swarmckpt.algorithm=magic", "bank_holder"); err != nil {
		t.Fatalf("service update: %v\n%s", err, out)
	}
	var sp *api.StackPolicy
	waitLong(t, "label errors in policy", func() bool {
		sp, _ = e.policyOf(t)
		return sp != nil && len(sp.LabelErrors) >= 3
	})
	errs := strings.Join(sp.LabelErrors, "\n")
	for _, want := range []string{`swarmckpt.retain="-1"`, `swarmckpt.replicas="5": more copies than nodes: the cluster has 3 nodes`, `swarmckpt.algorithm="magic": unknown algorithm`} {
		if !strings.Contains(errs, want) {
			t.Errorf("policy's label errors lack %q:\n%s", want, errs)
		}
	}
	if text, code := e.ctl(20*time.Second, "policy", "bank"); code != 0 || !strings.Contains(text, "LABEL ERRORS") {
		t.Errorf("policy bank: exit %d\n%s", code, text)
	}
	if log, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log")); !strings.Contains(string(log), "swarmckpt labels are in error") {
		t.Errorf("the coordinator log does not report the label errors")
	}
	time.Sleep(16 * time.Second) // longer than the schedule's period: nothing may run
	if s := e.scheduledSnapshots(t); len(s) != 0 || sp.Policy != nil || !sp.Next.IsZero() {
		t.Fatalf("labels in error, yet %d scheduled snapshots / policy %+v", len(s), sp)
	}

	// 1. bank's own labels (deploy/examples/bank.yml): a stack deploy that changes only
	// service labels restarts no task.
	deploy(filepath.Join(repoRoot(), "deploy", "examples", "bank.yml"))
	waitLong(t, "bank's policy applied", func() bool {
		sp, _ = e.policyOf(t)
		return sp != nil && sp.Policy != nil && len(sp.LabelErrors) == 0
	})
	if p := sp.Policy; p.Schedule != "@every 15s" || p.Retain != 2 || p.Algorithm != "chandy-lamport" || p.Replicas != 2 || strings.Join(p.From[policy.KeySchedule], ",") != "bank_holder" {
		t.Fatalf("bank.yml's policy: %+v; want @every 15s, retain 2, chandy-lamport, replicas 2, from bank_holder", p)
	}
	seen := map[string]*store.Manifest{} // every scheduled snapshot observed
	observe := func() []*store.Manifest {
		s := e.scheduledSnapshots(t)
		for _, m := range s {
			seen[m.ID] = m
		}
		return s
	}
	start := time.Now()
	for time.Since(start) < 70*time.Second {
		observe()
		time.Sleep(2 * time.Second)
	}
	// Between two runs (none going, the last one's retention done), exactly 2 are kept.
	checkKept := func(what string) []*store.Manifest {
		t.Helper()
		var kept []*store.Manifest
		waitLong(t, what, func() bool {
			sp, _ = e.policyOf(t)
			if sp == nil || sp.Running != "" || sp.Last == nil {
				return false
			}
			kept = kept[:0]
			for _, m := range observe() {
				if m.State == store.StateCommitted {
					kept = append(kept, m)
				}
			}
			return len(kept) == 2 && sp.Kept == 2
		})
		for i, m := range kept { // ls lists headers: the containers come with inspect
			kept[i] = e.inspectOf(t, m.ID)
		}
		for _, m := range kept {
			if len(m.Containers) == 0 {
				t.Fatalf("kept snapshot %s: inspect lists no container", m.ID)
			}
			if m.Algorithm != "chandy-lamport" {
				t.Fatalf("scheduled snapshot %s: algorithm %s, want chandy-lamport", m.ID, m.Algorithm)
			}
			for _, c := range m.Containers {
				if _, err := os.Stat(c.Images.Dir); err != nil {
					t.Fatalf("kept snapshot %s: image set of %s missing on %s's disk: %v", m.ID, c.Key(), c.Images.Node, err)
				}
				// replicas 2: the set is on 2 nodes' disks, the manifest says where.
				if on := onDisks(t, c.Images.Dir); len(on) != 2 || len(c.Copies) != 1 || c.Copies[0].Node == c.Images.Node {
					t.Fatalf("kept snapshot %s: set of %s on the disks %v, copies %+v; want it on 2 nodes, 1 copy on another node than %s", m.ID, c.Key(), on, c.Copies, c.Images.Node)
				}
			}
		}
		return kept
	}
	kept := checkKept("2 committed scheduled snapshots kept after 70 s")
	if len(seen) < 4 {
		t.Fatalf("%d scheduled snapshots in 70 s at @every 15s, want at least 4", len(seen))
	}
	goneFromDisk := func(kept []*store.Manifest) {
		t.Helper()
		keptIDs := map[string]bool{}
		for _, m := range kept {
			keptIDs[m.ID] = true
		}
		// Every set of a removed snapshot, or a copy of it, is named ID.SERVICE.SLOT in
		// the sets directory of a node (the layout of a kept snapshot's sets).
		dir := kept[0].Containers[0].Images.Dir
		for id, m := range seen {
			if keptIDs[id] || m.State != store.StateCommitted {
				continue
			}
			if on := onDisks(t, filepath.Join(filepath.Dir(dir), id+".*")); len(on) > 0 {
				t.Errorf("snapshot %s was removed by retention, but sets of it (or copies) are still on the disks: %v", id, on)
			}
		}
	}
	goneFromDisk(kept)
	t.Logf("after 70 s: %d scheduled runs, kept %s and %s, the others removed from the nodes' disks", len(seen), kept[0].ID, kept[1].ID)

	// 2. kill -9 the coordinator between two runs and restart it.
	before := len(seen)
	_ = e.coord.Process.Kill()
	_, _ = e.coord.Process.Wait()
	e.startCoordinator()
	waitLong(t, "2 more scheduled runs after the restart", func() bool {
		observe()
		return len(seen) >= before+2
	})
	kept = checkKept("retention after the restart")
	goneFromDisk(kept)
	var created []time.Time
	for _, m := range seen {
		created = append(created, m.CreatedAt)
	}
	sort.Slice(created, func(i, j int) bool { return created[i].Before(created[j]) })
	var gaps []string
	for i := 1; i < len(created); i++ {
		gap := created[i].Sub(created[i-1])
		gaps = append(gaps, gap.Round(100*time.Millisecond).String())
		if gap < 12*time.Second {
			t.Errorf("scheduled snapshots %d and %d started %s apart: a run was doubled (@every 15s)", i, i+1, gap)
		}
	}

	t.Logf("%d scheduled runs in all (coordinator killed -9 and restarted after run %d), started %s apart", len(created), before, strings.Join(gaps, ", "))

	// Quiet again for the tests that follow: the labels go, the last run ends, the
	// scheduled snapshots are removed.
	deploy(quietBank(t, e.dir))
	waitLong(t, "schedule stopped", func() bool {
		sp, _ = e.policyOf(t)
		return sp != nil && sp.Running == "" && sp.Next.IsZero()
	})

	// 4. The original set of a container deleted by hand: the restore uses its copy on
	// the other node and says so.
	var m *store.Manifest
	for _, s := range e.scheduledSnapshots(t) {
		if s.State == store.StateCommitted && (m == nil || s.CreatedAt.After(m.CreatedAt)) {
			m = s
		}
	}
	if m != nil {
		m = e.inspectOf(t, m.ID)
	}
	if m == nil || len(m.Containers) == 0 || len(m.Containers[0].Copies) != 1 {
		t.Fatalf("newest committed scheduled snapshot %+v: want one with a copy of each set", m)
	}
	c0 := m.Containers[0]
	if err := os.RemoveAll(c0.Images.Dir); err != nil {
		t.Fatal(err)
	}
	out, code := e.ctl(5*time.Minute, "restore", m.ID, "--mode", "swarm")
	if code != 0 || !strings.Contains(out, "used-copy") || !strings.Contains(out, "copy from "+c0.Copies[0].Node) {
		t.Fatalf("restore %s --mode swarm with the set of %s deleted on %s: exit %d; want 0 and the copy from %s used, said so\n%s", m.ID, c0.Key(), c0.Images.Node, code, c0.Copies[0].Node, out)
	}
	t.Logf("restore of %s after its set of %s was deleted on %s used the copy on %s", m.ID, c0.Key(), c0.Images.Node, c0.Copies[0].Node)
	// The swarm-mode restore used one set of each container; the other (original or
	// replica) is still on its node's disk, not dropped as a copy the restore made.
	for _, c := range m.Containers {
		if on := onDisks(t, c.Images.Dir); len(on) == 0 {
			t.Errorf("after the swarm-mode restore of %s no set of %s is left on any disk (its replica was dropped)", m.ID, c.Key())
		}
	}
	for _, m := range e.scheduledSnapshots(t) {
		if out, code := e.ctl(time.Minute, "rm", m.ID); code != 0 {
			t.Fatalf("rm %s: exit %d\n%s", m.ID, code, out)
		}
	}
	waitLong(t, "bank healthy and meshed", e.bankMeshed)
}

// inspectOf is `swarmckpt inspect ID --output json`: the whole manifest.
func (e *e2e) inspectOf(t *testing.T, id string) *store.Manifest {
	t.Helper()
	out, code := e.ctl(time.Minute, "inspect", id, "--output", "json")
	if code != 0 {
		t.Fatalf("inspect %s: exit %d\n%s", id, code, out)
	}
	var m store.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("inspect %s --output json: %v\n%s", id, err, out)
	}
	return &m
}

// onDisks lists the paths of the image set at dir (a path on one node's data root,
// ROOT/NODE/docker/swarmckpt/sets/SET; SET may be a glob) on every lab node's disk.
func onDisks(t *testing.T, dir string) []string {
	t.Helper()
	parts := strings.Split(filepath.Clean(dir), string(filepath.Separator))
	if len(parts) < 6 {
		t.Fatalf("image set path %s: not ROOT/NODE/docker/swarmckpt/sets/SET", dir)
	}
	parts[len(parts)-5] = "*"
	on, err := filepath.Glob(strings.Join(parts, string(filepath.Separator)))
	if err != nil {
		t.Fatal(err)
	}
	return on
}

package coordinator_test

// Node loss (issue 16, Done-when 4): bank labelled with a schedule, replicas 2 and
// swarmckpt.on-node-loss: restore (mode exact, the default); `swarmckpt lab fail`
// kills a node that runs a holder (link cut, dockerd, containerd, shims, containers,
// worker and agent killed with SIGKILL). Within 30 s of swarm marking the node down
// the coordinator restores bank as a whole on the survivors (in swarm mode:
// nodeloss.Mode) from its newest snapshot readable there; the total is conserved;
// `lab recover` brings back no duplicate holder. Twice: bank running as swarm tasks
// (swarm shuts the old ones down), then as an exact restore's standalone containers
// (the fence removes the old ones). Part of TestIntegrationE2E (its lab, at its end).

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// bankOnNodeLoss writes bank.yml with swarmckpt.on-node-loss: restore added into dir.
func bankOnNodeLoss(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "examples", "bank.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const anchor = `        swarmckpt.replicas: "2"`
	if !strings.Contains(string(b), anchor) {
		t.Fatalf("bank.yml has no line %q to add the on-node-loss label after", anchor)
	}
	out := strings.Replace(string(b), anchor, anchor+"\n        "+policy.KeyOnNodeLoss+": "+policy.OnNodeLossRestore, 1)
	p := filepath.Join(dir, "bank-nodeloss.yml")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// holders lists the running bank holder containers (swarm tasks and standalone
// restored ones) on each of nodes, node -> IDs; a node whose engine does not answer
// is left out.
func (e *e2e) holders(nodes ...string) map[string][]string {
	out := map[string][]string{}
	for _, n := range nodes {
		var ids []string
		for _, l := range []string{"com.docker.swarm.service.name=bank_holder", "io.swarmckpt.service=bank_holder"} {
			o, err := e.dockerOn(n, "ps", "-q", "--no-trunc", "--filter", "label="+l)
			if err != nil {
				ids = nil
				break
			}
			ids = append(ids, strings.Fields(o)...)
		}
		if len(ids) > 0 {
			out[n] = ids
		}
	}
	return out
}

var rolledBackRE = regexp.MustCompile(`stack bank rolled back to snapshot (\S+)`)

func (e *e2e) nodeLossRestore(t *testing.T) {
	e.t = t
	images, err := lab.ImageDirForTests()
	if err != nil {
		t.Fatal(err)
	}
	mgr := e.node(1)
	// Swarm marks a node down after a few of its dispatcher heartbeats (default 5 s):
	// 2 s keeps the step short.
	if out, err := e.dockerOut(mgr, "swarm", "update", "--dispatcher-heartbeat", "2s"); err != nil {
		t.Fatalf("swarm update: %v\n%s", err, out)
	}
	defer func() { _, _ = e.dockerOut(mgr, "swarm", "update", "--dispatcher-heartbeat", "5s") }()

	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images, bankOnNodeLoss(t, e.dir), "bank"); code != 0 {
		t.Fatalf("lab deploy: %s", out)
	}
	waitLong(t, "bank's on-node-loss policy applied", func() bool {
		sp, _ := e.policyOf(t)
		return sp != nil && sp.Policy != nil && sp.Policy.OnNodeLoss == policy.OnNodeLossRestore && sp.Policy.Replicas == 2
	})
	waitLong(t, "bank healthy and meshed", e.bankMeshed)
	// 1. bank as swarm tasks: the lost node's tasks are shut down by swarm when it
	// comes back.
	e.failNodeAndRecover(t, "swarm tasks")
	// 2. bank as an exact restore's standalone containers (services at 0): those on
	// the lost node are removed by its fence when it comes back.
	m := e.newestScheduled(t, time.Time{})
	if out, code := e.ctl(5*time.Minute, "restore", m.ID, "--discard-running"); code != 0 {
		t.Fatalf("exact restore of %s: exit %d\n%s", m.ID, code, out)
	}
	waitLong(t, "bank healthy and meshed after the exact restore", e.bankMeshed)
	if n := count(e.restoredOf("bank_holder", false)); n != 5 {
		t.Fatalf("after the exact restore: %d standalone holders, want 5", n)
	}
	e.failNodeAndRecover(t, "standalone containers")

	// Quiet again: no schedule, no on-node-loss (labels only: no task restarts).
	if out, err := e.dockerOut(mgr, "service", "update", "--detach", "--label-rm", policy.KeySchedule, "--label-rm", policy.KeyRetain,
		"--label-rm", policy.KeyOnNodeLoss, "bank_holder"); err != nil {
		t.Fatalf("service update: %v\n%s", err, out)
	}
}

// newestScheduled is bank's newest committed scheduled snapshot created after after,
// waited for.
func (e *e2e) newestScheduled(t *testing.T, after time.Time) *store.Manifest {
	t.Helper()
	var newest *store.Manifest
	waitLong(t, "a committed scheduled snapshot after "+after.Format(time.TimeOnly), func() bool {
		newest = nil
		for _, m := range e.scheduledSnapshots(t) {
			if m.State == store.StateCommitted && m.CreatedAt.After(after) && (newest == nil || m.CreatedAt.After(newest.CreatedAt)) {
				newest = m
			}
		}
		return newest != nil
	})
	return newest
}

// failNodeAndRecover waits for a scheduled snapshot of what runs, fails a node (not
// the manager) that runs a holder, checks that bank comes back whole on the survivors
// within 30 s of swarm marking the node down, recovers the node and checks that no
// holder comes back on it (what names what bank runs as).
func (e *e2e) failNodeAndRecover(t *testing.T, what string) {
	mgr := e.node(1)
	// A snapshot of what runs now with its copies made (retry: a run's copies follow
	// its commit).
	since := time.Now()
	waitLong(t, "a scheduled snapshot of what runs, with every set on 2 nodes", func() bool {
		m := e.newestScheduled(t, since)
		m = e.inspectOf(t, m.ID)
		for _, c := range m.Containers {
			if len(c.Copies) == 0 {
				return false
			}
		}
		return len(m.Containers) == 5
	})

	all := []string{e.node(1), e.node(2), e.node(3)}
	before := e.holders(all...)
	victim, idx := e.node(3), 3
	if len(before[victim]) == 0 {
		victim, idx = e.node(2), 2
	}
	if len(before[victim]) == 0 {
		t.Fatalf("no holder on %s or %s to fail: %v", e.node(2), e.node(3), before)
	}
	survivors := []string{e.node(1)}
	for _, n := range all[1:] {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	logBefore, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))

	// 1. The failure.
	out, code := e.run(time.Minute, "lab", "fail", "--name", e.name, victim)
	if code != 0 {
		t.Fatalf("lab fail %s: exit %d\n%s", victim, code, out)
	}
	failedAt := time.Now()
	t.Logf("%s", strings.TrimSpace(out))
	var downAt time.Time
	waitLong(t, "swarm marks "+victim+" down", func() bool {
		o, _ := e.dockerOn(mgr, "node", "inspect", "--format", "{{.Status.State}}", victim)
		if o == "down" {
			downAt = time.Now()
			return true
		}
		return false
	})
	// 2. Restored on the survivors, from the newest snapshot, within 30 s of the down.
	var restoredAt time.Time
	var snap string
	deadline := downAt.Add(30 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
		if m := rolledBackRE.FindStringSubmatch(string(log[len(logBefore):])); m != nil {
			snap = m[1]
			if h := e.holders(survivors...); count(h) == 5 {
				restoredAt = time.Now()
				break
			}
		}
		if time.Now().After(deadline) {
			tailLog, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log"))
			t.Fatalf("bank not restored on %v within 30 s of swarm marking %s down (snapshot %q, holders %v); coordinator log:\n%s",
				survivors, victim, snap, e.holders(survivors...), tail(string(tailLog[len(logBefore):]), 4000))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The snapshot: the newest committed one taken before the failure whose every set
	// is on a survivor (original or copy: replicas 2), or a newer one.
	if want := e.newestReadable(t, failedAt, survivors); want == nil {
		t.Errorf("restored from %s, but no snapshot taken before the failure has every set on a survivor", snap)
	} else if snap != want.ID && !e.inspectOf(t, snap).CreatedAt.After(want.CreatedAt) {
		t.Errorf("restored from %s, not from %s, the newest snapshot taken before the failure with every set on a survivor", snap, want.ID)
	}
	// bank's mode is exact (the default), but the lost node's addresses stay allocated
	// to its tasks: restored in swarm mode, and the log says why (nodeloss.Mode).
	if log, _ := os.ReadFile(filepath.Join(e.dir, "coordinator.log")); !strings.Contains(string(log[len(logBefore):]), "restored in swarm mode") {
		t.Errorf("the coordinator log does not say why an exact-mode stack was restored in swarm mode")
	}
	waitLong(t, "restored bank's total conserved", func() bool { _, ok := e.bankOK(); return ok })
	t.Logf("bank as %s: node %s failed; swarm marked it down after %s; bank restored from %s on %v %s after that (%s after the failure)",
		what, victim, downAt.Sub(failedAt).Round(100*time.Millisecond), snap, survivors, restoredAt.Sub(downAt).Round(100*time.Millisecond), restoredAt.Sub(failedAt).Round(100*time.Millisecond))
	sp, _ := e.policyOf(t)
	if sp == nil || len(sp.Fences) != 1 || sp.Fences[0].Node != victim || sp.Fences[0].Snapshot != snap {
		t.Fatalf("policy after the restore: fences %+v, want one for %s from %s", sp, victim, snap)
	}

	// 3. The node comes back: no duplicate holder, the fence cleared.
	if out, code := e.run(3*time.Minute, "lab", "recover", "--name", e.name, victim); code != 0 {
		t.Fatalf("lab recover %s: exit %d\n%s", victim, code, out)
	}
	e.startWorker(idx)
	e.startAgent(idx)
	waitLong(t, "the fence of "+victim+" cleared", func() bool {
		sp, _ := e.policyOf(t)
		return sp != nil && len(sp.Fences) == 0
	})
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		h := e.holders(all...)
		if count(h) != 5 || len(h[victim]) != 0 {
			t.Fatalf("after %s came back: holders %v, want 5, none on %s (a duplicate came back)", victim, h, victim)
		}
	}
	// Not even stopped: its standalone holders were removed by the fence.
	if ids, err := e.dockerOn(victim, "ps", "-aq", "--filter", "label=io.swarmckpt.service=bank_holder"); err != nil || ids != "" {
		t.Fatalf("after %s came back it still has standalone holders %q (err %v): its fence did not remove them", victim, ids, err)
	}
	if _, ok := e.bankOK(); !ok {
		t.Fatalf("bank's total not conserved after %s came back", victim)
	}
	t.Logf("bank as %s: %s recovered: still 5 holders, none on it; fence cleared", what, victim)
}

// newestReadable is bank's newest committed scheduled snapshot created before before
// whose every container has a set (original or copy) on one of nodes; nil if none.
func (e *e2e) newestReadable(t *testing.T, before time.Time, nodes []string) *store.Manifest {
	ms := e.scheduledSnapshots(t)
	sort.Slice(ms, func(i, j int) bool { return ms[i].CreatedAt.After(ms[j].CreatedAt) })
	for _, h := range ms {
		if h.State != store.StateCommitted || !h.CreatedAt.Before(before) {
			continue
		}
		m := e.inspectOf(t, h.ID)
		ok := len(m.Containers) > 0
		for _, c := range m.Containers {
			on := slices.Contains(nodes, c.Images.Node)
			for _, cp := range c.Copies {
				on = on || slices.Contains(nodes, cp.Node)
			}
			ok = ok && on
		}
		if ok {
			return m
		}
	}
	return nil
}

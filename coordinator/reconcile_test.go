package coordinator_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// policyEnv is env (service_test.go) with a policy reconciler reading labels from a
// FakeLabels, its log kept in log.
type policyEnv struct {
	*env
	labels *stack.FakeLabels
	log    *lockedBuffer
}

// newPolicyEnv starts a coordinator on st with labels as its policy source and an
// agent per node of bankStack. prepare, when set, is called with each node's fake
// executor before its agent starts.
func newPolicyEnv(t *testing.T, st *store.Memory, labels *stack.FakeLabels, prepare func(*worker.Fake)) *policyEnv {
	e := &env{t: t, net: bus.NewNetwork(), store: st, execs: map[string]*worker.Fake{}, cancel: map[string]context.CancelFunc{}}
	pe := &policyEnv{env: e, labels: labels, log: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := coordinator.New(coordinator.Config{Name: "coord-test", Bus: e.net.Connect(), Store: st,
		Resolver: stack.Static{"bank": bankStack()}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond,
		SnapshotTimeout: 5 * time.Second, PlanTimeout: time.Second,
		WorkerTimeout: 500 * time.Millisecond, RecoverWait: 200 * time.Millisecond,
		Policies: labels, PolicyResync: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(pe.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	for _, n := range []string{"lab-1", "lab-2", "lab-3"} {
		ex := worker.NewFake(n)
		if prepare != nil {
			prepare(ex)
		}
		e.execs[n] = ex
		e.startAgent(n)
	}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = svc.Run(ctx) }()
	e.client = api.Client{T: e.net.Connect()}
	t.Cleanup(func() {
		cancel()
		for _, c := range e.cancel {
			c()
		}
		e.wg.Wait()
	})
	waitFor(t, "coordinator and workers up", func() bool {
		c, cl := context.WithTimeout(context.Background(), time.Second)
		defer cl()
		s, err := api.Call[api.StatusResult](c, e.client, api.OpStatus, api.StatusRequest{})
		return err == nil && len(s.Workers) == 3
	})
	return pe
}

func (pe *policyEnv) policy(stackName string) (*api.PolicyResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.Call[api.PolicyResult](ctx, pe.client, api.OpPolicy, api.PolicyRequest{Stack: stackName})
}

// scheduled returns the stack's committed scheduled snapshots and every scheduled one.
func scheduled(t *testing.T, st store.Store) (committed, all []*store.Manifest) {
	ms, err := st.List(context.Background(), "bank")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !policy.Scheduled(m) {
			continue
		}
		all = append(all, m)
		if m.State == store.StateCommitted {
			committed = append(committed, m)
		}
	}
	return committed, all
}

// bankLabels are bank's policy labels.
func bankLabels(schedule, retain string) map[string]string {
	return map[string]string{policy.KeySchedule: schedule, policy.KeyRetain: retain, policy.KeyAlgorithm: "blocking"}
}

// A schedule runs snapshots with the stack's algorithm; retention keeps the newest
// committed scheduled ones, drops the older ones' image sets on their nodes, and
// never touches a manual snapshot.
func TestScheduledSnapshotsAndRetention(t *testing.T) {
	st := store.NewMemory()
	labels := &stack.FakeLabels{}
	pe := newPolicyEnv(t, st, labels, nil)
	if res, err := pe.snapshot("bank-manual"); err != nil || res.Snapshot.State != store.StateCommitted {
		t.Fatalf("manual snapshot: %v", err)
	}
	labels.Set("bank", "bank_holder", bankLabels("@every 1s", "2"))
	var removed []string
	waitForLong(t, 20*time.Second, "4 scheduled runs, retention after each", func() bool {
		res, err := pe.policy("bank")
		if err != nil || len(res.Stacks) != 1 || res.Stacks[0].Last == nil {
			return false
		}
		if l := res.Stacks[0].Last; l.Result == coordinator.RunCommitted {
			for _, id := range l.Removed {
				if !contains(removed, id) {
					removed = append(removed, id)
				}
			}
		}
		return len(removed) >= 2
	})
	labels.Set("bank", "bank_holder", map[string]string{policy.KeyEnable: "false"}) // stop the schedule
	waitFor(t, "the last run finished", func() bool {
		res, err := pe.policy("bank")
		return err == nil && res.Stacks[0].Running == "" && res.Stacks[0].Next.IsZero()
	})
	committed, _ := scheduled(t, st)
	if len(committed) != 2 {
		t.Fatalf("%d committed scheduled snapshots kept, want 2 (retain 2)", len(committed))
	}
	for _, m := range committed {
		if m.Algorithm != "blocking" || m.Purpose != policy.PurposeScheduled {
			t.Fatalf("scheduled snapshot %s: algorithm %s, purpose %q", m.ID, m.Algorithm, m.Purpose)
		}
	}
	if _, err := st.Get(context.Background(), "bank-manual"); err != nil {
		t.Fatalf("the manual snapshot was touched by retention: %v", err)
	}
	for _, id := range removed {
		if _, err := st.Get(context.Background(), id); err == nil {
			t.Fatalf("removed snapshot %s still stored", id)
		}
		for _, c := range bankStack().Containers {
			set := node.SetID(id, c.Service+"."+itoa(c.Slot))
			if pe.execs[c.Node].HasSet(set) {
				t.Fatalf("image set %s of removed snapshot %s still on %s", set, id, c.Node)
			}
		}
	}
	for _, m := range committed {
		c := bankStack().Containers[0]
		if !pe.execs[c.Node].HasSet(node.SetID(m.ID, c.Service+"."+itoa(c.Slot))) {
			t.Fatalf("kept snapshot %s lost its image set on %s", m.ID, c.Node)
		}
	}
}

// A due run while the previous one still goes is skipped, never stacked; a user's
// snapshot meanwhile waits for the scheduled one instead of failing busy.
func TestScheduledRunStillGoingIsSkipped(t *testing.T) {
	st := store.NewMemory()
	labels := &stack.FakeLabels{}
	stall := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(stall) }) }
	defer release()
	pe := newPolicyEnv(t, st, labels, func(ex *worker.Fake) {
		if ex.Node == "lab-1" {
			ex.Stall = map[string]chan struct{}{"ctr1": stall}
		}
	})
	labels.Set("bank", "bank_holder", bankLabels("@every 1s", "5"))
	waitForLong(t, 20*time.Second, "a run skipped while the first one stalls", func() bool {
		res, err := pe.policy("bank")
		return err == nil && res.Stacks[0].Skipped >= 2 && res.Stacks[0].Running != ""
	})
	if _, all := scheduled(t, st); len(all) != 1 {
		t.Fatalf("%d scheduled snapshots while the first one still runs, want 1", len(all))
	}
	done := make(chan error, 1)
	go func() { _, err := pe.snapshot("bank-user"); done <- err }()
	time.Sleep(100 * time.Millisecond) // the user's snapshot is waiting for the gate (it cannot be observed otherwise)
	release()
	if err := <-done; err != nil {
		t.Fatalf("a user's snapshot during a scheduled one: %v (want it to wait, not fail busy)", err)
	}
	if !strings.Contains(pe.log.String(), "scheduled snapshot skipped") {
		t.Fatal("the skipped run is not in the coordinator log")
	}
}

// Malformed or conflicting labels: the errors are shown by the policy API and logged
// once; nothing is scheduled.
func TestLabelErrorsApplyNothing(t *testing.T) {
	st := store.NewMemory()
	labels := &stack.FakeLabels{}
	pe := newPolicyEnv(t, st, labels, nil)
	labels.Set("bank", "bank_holder", map[string]string{policy.KeySchedule: "@every 1s", policy.KeyRetain: "-1", policy.KeyReplicas: "0"})
	labels.Set("bank", "bank_other", map[string]string{policy.KeySchedule: "every day"})
	var res *api.PolicyResult
	waitFor(t, "label errors in the policy API", func() bool {
		var err error
		res, err = pe.policy("bank")
		return err == nil && len(res.Stacks[0].LabelErrors) > 0
	})
	sp := res.Stacks[0]
	joined := strings.Join(sp.LabelErrors, "\n")
	for _, want := range []string{`service bank_holder: label swarmckpt.retain="-1"`, `swarmckpt.replicas="0": not a whole number from 1 to 16`, `conflict: service bank_other says "every day"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("label errors lack %q:\n%s", want, joined)
		}
	}
	if sp.Policy != nil || !sp.Next.IsZero() {
		t.Fatalf("a policy in error is applied: %+v", sp)
	}
	time.Sleep(1500 * time.Millisecond) // a whole period of the schedule the labels ask for: nothing may run
	if _, all := scheduled(t, st); len(all) != 0 {
		t.Fatalf("%d scheduled snapshots of a stack whose labels are in error", len(all))
	}
	if n := strings.Count(pe.log.String(), "swarmckpt labels are in error"); n != 1 {
		t.Fatalf("label errors logged %d times over many passes, want once:\n%s", n, pe.log.String())
	}
	// Fixed, the policy applies.
	labels.Set("bank", "bank_other", nil)
	labels.Set("bank", "bank_holder", bankLabels("@every 1h", "2"))
	waitFor(t, "the fixed policy applied", func() bool {
		res, err := pe.policy("bank")
		return err == nil && res.Stacks[0].Policy != nil && len(res.Stacks[0].LabelErrors) == 0 && !res.Stacks[0].Next.IsZero()
	})
	p := mustPolicy(t, pe, "bank")
	if got := p.From[policy.KeySchedule]; len(got) != 1 || got[0] != "bank_holder" {
		t.Fatalf("schedule came from %v, want bank_holder", got)
	}
	if _, err := pe.policy("nosuch"); err == nil {
		t.Fatal("policy of a stack without labels: no error")
	}
}

// A restarted coordinator finishes the run its predecessor left (recording it and
// applying retention) and does not run again before the next due time.
func TestRestartFinishesTheLeftRunWithoutDoubling(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	now := time.Now().UTC()
	for i, id := range []string{"bank-s1", "bank-s2", "bank-s3"} {
		m := &store.Manifest{ID: id, Stack: "bank", Algorithm: "blocking", State: store.StateCommitted, Purpose: policy.PurposeScheduled,
			CreatedAt: now.Add(time.Duration(i-3) * time.Hour), CommittedAt: now.Add(time.Duration(i-3) * time.Hour)}
		if err := st.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	next := now.Add(time.Hour)
	if err := st.PutPolicy(ctx, &store.PolicyState{Stack: "bank", Schedule: "@every 1h", Next: next, Running: "bank-s3"}); err != nil {
		t.Fatal(err)
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", bankLabels("@every 1h", "1"))
	pe := newPolicyEnv(t, st, labels, nil)
	var sp api.StackPolicy
	waitFor(t, "the left run recorded", func() bool {
		res, err := pe.policy("bank")
		if err != nil || res.Stacks[0].Last == nil {
			return false
		}
		sp = res.Stacks[0]
		return true
	})
	if sp.Last.ID != "bank-s3" || sp.Last.Result != coordinator.RunCommitted || !sp.Next.Equal(next) || sp.Running != "" || sp.Kept != 1 {
		t.Fatalf("after restart: %+v (last %+v); want bank-s3 committed, next %s kept, 1 kept\n%s", sp, sp.Last, next, pe.log.String())
	}
	if _, all := scheduled(t, st); len(all) != 1 || all[0].ID != "bank-s3" {
		t.Fatalf("scheduled snapshots after restart: %d (want only bank-s3: no new run, s1 and s2 removed)", len(all))
	}
}

// A coordinator that was down over several due times runs once when it comes back.
func TestMissedRunsRunOnce(t *testing.T) {
	st := store.NewMemory()
	if err := st.PutPolicy(context.Background(), &store.PolicyState{Stack: "bank", Schedule: "@every 1h", Next: time.Now().Add(-5*time.Hour - 30*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", bankLabels("@every 1h", "3"))
	pe := newPolicyEnv(t, st, labels, nil)
	waitFor(t, "the missed run", func() bool {
		res, err := pe.policy("bank")
		return err == nil && res.Stacks[0].Last != nil
	})
	time.Sleep(200 * time.Millisecond) // ten passes at the 20ms resync: none may run again
	if _, all := scheduled(t, st); len(all) != 1 {
		t.Fatalf("%d scheduled snapshots after 5 missed runs, want 1", len(all))
	}
	if !strings.Contains(pe.log.String(), "missed=5") {
		t.Fatalf("the missed runs are not reported in the log:\n%s", pe.log.String())
	}
}

func mustPolicy(t *testing.T, pe *policyEnv, name string) *policy.Policy {
	t.Helper()
	res, err := pe.policy(name)
	if err != nil || len(res.Stacks) != 1 || res.Stacks[0].Policy == nil {
		t.Fatalf("policy %s: %+v, %v", name, res, err)
	}
	return res.Stacks[0].Policy
}

func waitForLong(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }

// A stack whose labels are gone loses its record, also when its predecessor left a
// scheduled run in it (finished first); its snapshots stay.
func TestUnlabelledStackLosesItsRecord(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	m := &store.Manifest{ID: "bank-s1", Stack: "bank", Algorithm: "blocking", State: store.StateCommitted, Purpose: policy.PurposeScheduled, CreatedAt: time.Now()}
	if err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPolicy(ctx, &store.PolicyState{Stack: "bank", Schedule: "@every 1h", Next: time.Now().Add(time.Hour), Running: "bank-s1"}); err != nil {
		t.Fatal(err)
	}
	labels := &stack.FakeLabels{}
	labels.Set("bank", "bank_holder", map[string]string{"other": "label"})
	pe := newPolicyEnv(t, st, labels, nil)
	waitFor(t, "the record removed", func() bool {
		ps, err := st.ListPolicies(ctx)
		return err == nil && len(ps) == 0
	})
	if _, err := st.Get(ctx, "bank-s1"); err != nil {
		t.Fatalf("the stack's scheduled snapshot went with its record: %v", err)
	}
	if _, err := pe.policy("bank"); err == nil {
		t.Fatal("policy of a stack without labels: no error")
	}
}

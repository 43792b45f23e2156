package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/worker/agent"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

func drainTasks() []stack.Task {
	t0 := time.Unix(1000, 0)
	return []stack.Task{
		{Service: "st_web", Slot: 1, TaskID: "old", Node: "n1", DesiredState: "shutdown", State: "running", ContainerID: "c1", CreatedAt: t0},
		{Service: "st_web", Slot: 1, TaskID: "new", Node: "n2", DesiredState: "ready", State: "assigned", CreatedAt: t0.Add(time.Minute)},
		{Service: "st_web", Slot: 2, TaskID: "other", Node: "n3", DesiredState: "running", State: "running", ContainerID: "c2", CreatedAt: t0},
	}
}

func TestDrainBudget(t *testing.T) {
	for grace, want := range map[time.Duration]time.Duration{0: 9 * time.Second, 5 * time.Second: 4 * time.Second,
		time.Minute: 49 * time.Second, time.Second: 0} {
		if got := drainBudget(grace); got != want {
			t.Errorf("drainBudget(%s) = %s, want %s", grace, got, want)
		}
	}
}

func TestDecideHeld(t *testing.T) {
	held := node.DrainEvent{Node: "n1", ContainerID: "c1", Stack: "st", Service: "st_web", Slot: 1, Policy: "migrate", What: node.DrainHeld}
	noRepl := drainTasks()[:1]
	sameNode := append(drainTasks()[:1], stack.Task{Service: "st_web", Slot: 1, TaskID: "new", Node: "n1", DesiredState: "ready"})
	for _, c := range []struct {
		name   string
		e      node.DrainEvent
		avail  string
		tasks  []stack.Task
		target string // "" : release
		reason string
		moving bool // the coordinator is moving the task (moveheld.go)
	}{
		{"drain with a replacement elsewhere", held, "drain", drainTasks(), "n2", "", false},
		{"node active (update, scale down, docker stop)", held, "active", drainTasks(), "", "not draining", false},
		{"node paused", held, "pause", drainTasks(), "", "not draining", false},
		{"no replacement yet", held, "drain", noRepl, "", "no replacement task", false},
		{"replacement on the drained node", held, "drain", sameNode, "", "no replacement task", false},
		{"unknown container", func() node.DrainEvent { e := held; e.ContainerID = "zz"; return e }(), "drain", drainTasks(), "", "no task with this container", false},
		{"other policy", func() node.DrainEvent { e := held; e.Policy = ""; return e }(), "drain", drainTasks(), "", "on-drain policy", false},
		{"armed without task", func() node.DrainEvent { e := held; e.Service = ""; return e }(), "drain", drainTasks(), "", "without its swarm task", false},
		// A swarm-mode migration of only the moving tasks: no drain, swarm stops them
		// for a placement constraint.
		{"moved by a migration (armed so)", func() node.DrainEvent { e := held; e.Policy = movePolicy("m1"); return e }(), "active", drainTasks(), "n2", "", false},
		{"moved by a migration (the coordinator's own record)", held, "active", drainTasks(), "n2", "", true},
		{"unlabelled stack moved by a migration", func() node.DrainEvent { e := held; e.Policy = ""; return e }(), "active", drainTasks(), "n2", "", true},
		{"moved, but no replacement elsewhere", func() node.DrainEvent { e := held; e.Policy = movePolicy("m1"); return e }(), "active", noRepl, "", "no replacement task", false},
	} {
		a := decideHeld(c.e, c.avail, c.tasks, c.moving)
		if a.Migrate != (c.target != "") || a.Target != c.target || !strings.Contains(a.Reason, c.reason) {
			t.Errorf("%s: %+v, want target %q reason %q", c.name, a, c.target, c.reason)
		}
	}
}

// staticSwarm is a DrainSwarm with fixed answers.
type staticSwarm struct {
	tasks []stack.Task
	avail string
}

func (s staticSwarm) Tasks(context.Context, string) ([]stack.Task, error) { return s.tasks, nil }
func (s staticSwarm) NodeAvailability(context.Context, string) (string, error) {
	return s.avail, nil
}

// A held stop on a draining node: checkpointed on n1, sent to and placed on n2 for
// the slot, and only then released (verdict checkpointed); on an active node it is
// released at once without a checkpoint.
func TestDrainControllerMigratesHeldTask(t *testing.T) {
	net, execs, quiet := drainAgents(t)
	n1, n2 := execs["n1"], execs["n2"]
	ctx := context.Background()
	ev := node.DrainEvent{Node: "n1", ContainerID: "c1", Name: "c1", Stack: "st", Service: "st_web", Slot: 1, Policy: "migrate",
		Deadline: time.Now().Add(9 * time.Second), What: node.DrainHeld}
	arm := worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate", Stack: "st", Service: "st_web", Slot: 1}
	for _, avail := range []string{"active", "drain"} {
		if err := n1.Arm(ctx, "c1", arm); err != nil {
			t.Fatal(err)
		}
		if !n1.HoldStop("c1", "15") {
			t.Fatal("stop not held")
		}
		rec := &events.Recorder{}
		d := &drainController{s: &Service{cfg: Config{Bus: net.Connect(), Store: store.NewMemory()}, ev: rec}, sw: staticSwarm{tasks: drainTasks(), avail: avail},
			addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
		d.handle(ctx, ev)
		var kinds []string
		for _, e := range rec.Events() {
			kinds = append(kinds, e.Kind)
			if e.Node != "n1" && e.Kind != events.Restored {
				t.Errorf("%s event about node %q, want n1", e.Kind, e.Node)
			}
		}
		want := map[string]string{"active": "task-held released", "drain": "task-held drain-seen checkpointed restored"}[avail]
		if got := strings.Join(kinds, " "); got != want {
			t.Errorf("%s node: events %q, want %q", avail, got, want)
		}
		v, ok := n1.Verdict("c1")
		placed := n2.PlacedTask("st_web", 1)
		switch avail {
		case "active":
			if !ok || v.Outcome != ociwrap.VerdictRelease || placed != nil {
				t.Fatalf("active node: verdict %+v %v, placed %+v; want released, nothing placed", v, ok, placed)
			}
		case "drain":
			if !ok || v.Outcome != ociwrap.VerdictCheckpointed || !strings.Contains(v.Reason, "placed on n2") {
				t.Fatalf("draining node: verdict %+v %v, want checkpointed and placed on n2", v, ok)
			}
			if placed == nil || !strings.HasPrefix(placed.Set, "drain.st_web.1.") {
				t.Fatalf("placed on n2: %+v, want the drain set for st_web slot 1", placed)
			}
		}
	}
}

// drainAgents runs agents n1 and n2 over fake workers on a memory bus.
func drainAgents(t *testing.T) (*bus.Network, map[string]*worker.Fake, *slog.Logger) {
	t.Helper()
	net := bus.NewNetwork()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	execs := map[string]*worker.Fake{}
	actx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range []string{"n1", "n2"} {
		ex := worker.NewFake(n)
		ex.TransferAddr = n
		ex.SendTo = func(set, to string) (bool, error) { execs[to].PutSet(set); return false, nil }
		execs[n] = ex
		a, err := agent.New(agent.Config{Node: n, Bus: net.Connect(), Worker: ex.Roles(), Log: quiet,
			Algorithms: func(name string) (algorithms.Algorithm, error) { return registry.Lookup(name) }})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}
	ctx := context.Background()
	// The agents subscribe in Run: wait until both answer.
	for _, n := range []string{"n1", "n2"} {
		for deadline := time.Now().Add(5 * time.Second); ; {
			c, cl := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err := net.Connect().Request(c, node.HoldsSubject(n), []byte(`{}`))
			cl()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s not up: %v", n, err)
			}
			time.Sleep(10 * time.Millisecond) // polling the agent's start
		}
	}
	return net, execs, quiet
}

// stoppingSwarm is a staticSwarm that is also the coordinator's Stopper.
type stoppingSwarm struct{ staticSwarm }

func (stoppingSwarm) StopStack(context.Context, string) error { return nil }

// The reconciler arms the running tasks of a stack labelled on-drain migrate on their
// nodes (not the ones swarm is stopping), once, and disarms them when the label goes.
func TestReconcilerArmsLabelledTasks(t *testing.T) {
	net, execs, quiet := drainAgents(t)
	t0 := time.Unix(1000, 0)
	sw := stoppingSwarm{staticSwarm{avail: "active", tasks: []stack.Task{
		{Service: "st_web", Slot: 1, TaskID: "t1", Node: "n1", DesiredState: "running", State: "running", ContainerID: "c1", CreatedAt: t0},
		{Service: "st_web", Slot: 2, TaskID: "t2", Node: "n2", DesiredState: "running", State: "running", ContainerID: "c2", CreatedAt: t0},
		{Service: "st_web", Slot: 3, TaskID: "t3", Node: "n1", DesiredState: "shutdown", State: "running", ContainerID: "c3", CreatedAt: t0},
		{Service: "st_db", Slot: 1, TaskID: "t4", Node: "n2", DesiredState: "running", State: "running", ContainerID: "c4", CreatedAt: t0,
			StopGracePeriod: 2 * time.Second},
		{Service: "st_db", Slot: 2, TaskID: "t5", Node: "n2", DesiredState: "running", State: "running", ContainerID: "c5", CreatedAt: t0,
			StopGracePeriod: 2 * time.Minute},
	}}}
	r := &reconciler{s: &Service{cfg: Config{Bus: net.Connect(), Stopper: sw}}, log: quiet, armed: map[string]bool{}, armedStack: map[string]string{}}
	ctx := context.Background()
	labelled := []policy.Service{{Name: "st_web", Labels: map[string]string{policy.KeyOnDrain: "migrate"}}}
	r.drainArm(ctx, "st", labelled)
	if !r.armed["c1"] || !r.armed["c2"] || r.armed["c3"] || r.armed["c4"] || !r.armed["c5"] {
		t.Fatalf("armed %v, want c1, c2 and c5 (c3 is being stopped, c4's grace period is too short)", r.armed)
	}
	// Budgets: the default grace period (10 s) minus 1 s; a long one capped at 50 s.
	for c, want := range map[string]time.Duration{"c2": 9 * time.Second, "c5": 49 * time.Second} {
		if !execs["n2"].HoldStop(c, "15") {
			t.Fatalf("%s not armed", c)
		}
		hs, _ := execs["n2"].HeldStops(ctx)
		for _, h := range hs {
			if h.ContainerID == c && h.Armed.Budget != want {
				t.Errorf("%s armed with budget %s, want %s", c, h.Armed.Budget, want)
			}
		}
		_ = execs["n2"].ReleaseHeld(ctx, c, "test")
	}
	for n, c := range map[string]string{"n1": "c1", "n2": "c2"} {
		if !execs[n].HoldStop(c, "15") {
			t.Fatalf("%s not armed on %s", c, n)
		}
		_ = execs[n].ReleaseHeld(ctx, c, "test")
	}
	if execs["n1"].HoldStop("c3", "15") {
		t.Fatal("a task swarm is stopping was armed")
	}
	// Disabled, then unlabelled: disarmed.
	r.drainArm(ctx, "st", []policy.Service{{Name: "st_web", Labels: map[string]string{policy.KeyOnDrain: "migrate", policy.KeyEnable: "false"}}})
	if len(r.armed) != 0 || execs["n1"].HoldStop("c1", "15") || execs["n2"].HoldStop("c2", "15") {
		t.Fatalf("still armed after the policy was disabled: %v", r.armed)
	}
	r.drainArm(ctx, "st", labelled)
	r.drainArm(ctx, "st", nil)
	if len(r.armed) != 0 || execs["n1"].HoldStop("c1", "15") {
		t.Fatalf("still armed after the label went: %v", r.armed)
	}
}

// TestDrainControllerResumesACheckpointedHold: a leader died after it checkpointed a
// held task into its set (the stop still held, the set on the drained node, nothing
// placed): the agent reports the hold again with its set, and the next leader sends
// and places that set for the replacement and releases the stop, without a second
// checkpoint: the task's state is not lost to a fresh start.
func TestDrainControllerResumesACheckpointedHold(t *testing.T) {
	net, execs, quiet := drainAgents(t)
	n1, n2 := execs["n1"], execs["n2"]
	ctx := context.Background()
	arm := worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate", Stack: "st", Service: "st_web", Slot: 1}
	if err := n1.Arm(ctx, "c1", arm); err != nil {
		t.Fatal(err)
	}
	if !n1.HoldStop("c1", "15") {
		t.Fatal("stop not held")
	}
	const set = "drain.st_web.1.1"
	if _, err := n1.CheckpointHeld(ctx, "c1", set, ""); err != nil { // the dead leader's checkpoint
		t.Fatal(err)
	}
	dumps := n1.Dumps("c1")
	ev := node.DrainEvent{Node: "n1", ContainerID: "c1", Name: "c1", Stack: "st", Service: "st_web", Slot: 1, Policy: "migrate",
		Deadline: time.Now().Add(9 * time.Second), What: node.DrainHeld, Set: set}
	d := &drainController{s: &Service{cfg: Config{Bus: net.Connect(), Store: store.NewMemory()}}, sw: staticSwarm{tasks: drainTasks(), avail: "drain"},
		addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
	d.handle(ctx, ev)
	v, ok := n1.Verdict("c1")
	if !ok || v.Outcome != ociwrap.VerdictCheckpointed || !strings.Contains(v.Reason, "placed on n2") {
		t.Fatalf("verdict %+v %v, want checkpointed and placed on n2", v, ok)
	}
	if p := n2.PlacedTask("st_web", 1); p == nil || p.Set != set {
		t.Fatalf("placed on n2: %+v, want the dead leader's set %s", p, set)
	}
	if n := n1.Dumps("c1"); n != dumps {
		t.Errorf("c1 dumped %d times, want %d (no second checkpoint)", n, dumps)
	}
}

// A checkpoint that ends at or after the hold's deadline, or is cut by a deadline, is
// a hold that timed out; an error well before it is not.
func TestTimedOut(t *testing.T) {
	now := time.Now()
	cases := []struct {
		err      error
		deadline time.Time
		want     bool
	}{
		{context.DeadlineExceeded, now.Add(time.Second), true},
		{fmt.Errorf("held: %w", bus.ErrTimeout), now.Add(time.Second), true},
		{errors.New("dump failed"), now, true},
		{errors.New("dump failed"), now.Add(5 * time.Second), false},
		{fmt.Errorf("x: %w", node.ErrNotFound), now.Add(5 * time.Second), false},
	}
	for i, c := range cases {
		if got := timedOut(c.err, c.deadline, now); got != c.want {
			t.Errorf("case %d (%v): timedOut %v, want %v", i, c.err, got, c.want)
		}
	}
}

// heldCopy: a held stop is copied direct when direct (or post-copy, which cannot
// apply to a held stop) is asked and both its node and the replacement's announce
// drain-direct; otherwise streamed, saying why.
func TestHeldCopy(t *testing.T) {
	cur := []string{"dump-into-held", "post-copy-migrate", "drain-direct"}
	live := []store.Worker{{Node: "a", Features: cur}, {Node: "b", Features: cur}, {Node: "old", Features: cur[:2]}}
	for _, tc := range []struct {
		want, source, target string
		direct               bool
		note                 []string
	}{
		{want: "", source: "a", target: "b"},
		{want: "streamed", source: "a", target: "b"},
		{want: "cold", source: "a", target: "b"},
		{want: "pre-copy", source: "a", target: "b"},
		{want: "direct", source: "a", target: "b", direct: true},
		{want: "post-copy", source: "a", target: "b", direct: true, note: []string{"post-copy cannot apply to a held stop"}},
		{want: "direct", source: "old", target: "b", note: []string{"node old's worker does not announce \"drain-direct\"", "copied streamed"}},
		{want: "direct", source: "a", target: "old", note: []string{"node old's worker", "copied streamed"}},
		{want: "direct", source: "a", target: "gone", note: []string{"node gone's worker", "copied streamed"}},
	} {
		direct, note := heldCopy(tc.want, live, tc.source, tc.target)
		if direct != tc.direct || (len(tc.note) == 0) != (note == "") {
			t.Errorf("heldCopy(%q, %s -> %s) = %v, %q; want direct %v, a note %v", tc.want, tc.source, tc.target, direct, note, tc.direct, len(tc.note) > 0)
		}
		for _, w := range tc.note {
			if !strings.Contains(note, w) {
				t.Errorf("heldCopy(%q, %s -> %s) note %q, want it to say %q", tc.want, tc.source, tc.target, note, w)
			}
		}
	}
}

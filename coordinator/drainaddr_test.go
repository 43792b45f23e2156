package coordinator

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// The held task's readdressing: its map covers every moving task of the stack whose
// replacement has an address (so moved peers' connections are rewritten on both
// sides), its own pairs are what staying peers translate, and the peers are the
// running tasks of slots that do not move (replacements of moved slots left out).
func TestHeldAddresses(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	task := func(slot int, id, nd, desired, state, ctr, ip string, age time.Duration) stack.Task {
		tk := stack.Task{Service: "bank_holder", Slot: slot, TaskID: id, Node: nd, DesiredState: desired, State: state,
			ContainerID: ctr, CreatedAt: t0.Add(age)}
		if ip != "" {
			tk.Addresses = []stack.NetAddr{{Network: "bank_net", IP: ip}}
		}
		return tk
	}
	tasks := []stack.Task{
		task(1, "t1", "n3", "shutdown", "running", "c1", "10.0.0.2", 0), // held
		task(1, "t1b", "n2", "running", "assigned", "", "10.0.0.12", time.Second),
		task(2, "t2", "n3", "shutdown", "running", "c2", "10.0.0.3", 0), // moves too
		task(2, "t2b", "n1", "running", "assigned", "", "10.0.0.13", time.Second),
		task(3, "t3", "n3", "shutdown", "running", "c3", "10.0.0.4", 0), // moves, no address yet
		task(3, "t3b", "n1", "running", "pending", "", "", time.Second),
		task(4, "t4", "n1", "running", "running", "c4", "10.0.0.5", 0), // stays
		task(5, "t5", "n2", "running", "running", "c5", "10.0.0.6", 0), // stays
		task(5, "t5old", "n2", "shutdown", "failed", "c5old", "10.0.0.9", -time.Hour),
	}
	e := node.DrainEvent{Node: "n3", ContainerID: "c1", Service: "bank_holder", Slot: 1}
	got := heldAddresses(e, tasks)
	if want := map[string]string{"10.0.0.2": "10.0.0.12", "10.0.0.3": "10.0.0.13"}; !reflect.DeepEqual(got.Map, want) {
		t.Errorf("Map %v, want %v", got.Map, want)
	}
	if want := [][2]string{{"10.0.0.2", "10.0.0.12"}}; !reflect.DeepEqual(got.Own, want) {
		t.Errorf("Own %v, want %v", got.Own, want)
	}
	if want := map[string][]string{"n1": {"c4"}, "n2": {"c5"}}; !reflect.DeepEqual(got.Peers, want) {
		t.Errorf("Peers %v, want %v", got.Peers, want)
	}
	if want := []string{"bank_holder.3"}; !reflect.DeepEqual(got.Missing, want) {
		t.Errorf("Missing %v, want %v", got.Missing, want)
	}
	// A migration moves the tasks of a node one after the other (swarm's update): a
	// task on the held task's node that does not move (yet) is a staying peer too, so
	// that it carries the translation into its own images when it moves later.
	seq := append(slices.Clone(tasks), task(6, "t6", "n3", "running", "running", "c6", "10.0.0.7", 0))
	if got := heldAddresses(e, seq); !slices.Contains(got.Peers["n3"], "c6") {
		t.Errorf("Peers %v: want c6, staying (for now) on the held task's node n3", got.Peers)
	}
	// A slot moved earlier by the same migration (its task on n3 ended): its
	// replacement, running since before the held task's replacement was created, was
	// restored without the held task's new address: a peer. One running since after
	// (a drain: every replacement created at once, then restored) knows it: not one.
	before := task(7, "t7", "n3", "shutdown", "shutdown", "c7", "10.0.0.8", -time.Minute)
	early := task(7, "t7b", "n2", "running", "running", "c7b", "10.0.0.18", -30*time.Second)
	early.StateSince = t0.Add(-20 * time.Second) // t1b (the held task's replacement) is created at t0+1s
	late := early
	late.StateSince = t0.Add(5 * time.Second)
	if got := heldAddresses(e, append(slices.Clone(tasks), before, early)); !slices.Contains(got.Peers["n2"], "c7b") {
		t.Errorf("Peers %v: want c7b, restored before the held task's replacement existed", got.Peers)
	}
	if got := heldAddresses(e, append(slices.Clone(tasks), before, late)); slices.Contains(got.Peers["n2"], "c7b") {
		t.Errorf("Peers %v: c7b was restored after the held task's replacement existed (its map had the new address)", got.Peers)
	}
	// A replacement without its address: nothing of its own to translate.
	e3 := node.DrainEvent{Node: "n3", ContainerID: "c3", Service: "bank_holder", Slot: 3}
	if got := heldAddresses(e3, tasks); len(got.Own) != 0 {
		t.Errorf("Own of a task whose replacement has no address: %v", got.Own)
	}
}

// Through the agents: the replacement's placement is locked and waits for its
// address map, the map is there before the stop is released, the staying peer
// translates, and the replacement is unlocked once it runs.
func TestDrainControllerReaddressesHeldTask(t *testing.T) {
	net, execs, quiet := drainAgents(t)
	n1, n2 := execs["n1"], execs["n2"]
	ctx := context.Background()
	tasks := drainTasks()
	tasks[0].Addresses = []stack.NetAddr{{Network: "st_net", IP: "10.0.0.2"}}
	tasks[1].Addresses = []stack.NetAddr{{Network: "st_net", IP: "10.0.0.12"}}
	// The replacement runs (restored locked; the static swarm lists it running at once).
	tasks[1].State, tasks[1].ContainerID = "running", "r1"
	if err := n2.Lock(ctx, "r1", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tasks[2].Node, tasks[2].Addresses = "n2", []stack.NetAddr{{Network: "st_net", IP: "10.0.0.3"}}
	n2.SetXlateInUse("c2", netip.MustParseAddr("10.0.0.2"), true)
	if err := n1.Arm(ctx, "c1", worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate", Stack: "st", Service: "st_web", Slot: 1}); err != nil {
		t.Fatal(err)
	}
	if !n1.HoldStop("c1", "15") {
		t.Fatal("stop not held")
	}
	d := &drainController{s: &Service{cfg: Config{Bus: net.Connect(), Store: store.NewMemory()}, ev: &events.Recorder{}}, sw: staticSwarm{tasks: tasks, avail: "drain"},
		addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
	d.handle(ctx, node.DrainEvent{Node: "n1", ContainerID: "c1", Name: "c1", Stack: "st", Service: "st_web", Slot: 1, Policy: "migrate",
		Deadline: time.Now().Add(9 * time.Second), What: node.DrainHeld})
	if v, ok := n1.Verdict("c1"); !ok || v.Outcome != ociwrap.VerdictCheckpointed {
		t.Fatalf("verdict %+v %v, want checkpointed", v, ok)
	}
	placed := n2.PlacedTask("st_web", 1)
	if placed == nil || !placed.WaitMap || !placed.Locked || !reflect.DeepEqual(placed.Addresses, map[string]string{"10.0.0.2": "10.0.0.12"}) {
		t.Fatalf("placed on n2: %+v, want locked, waiting for and holding the map 10.0.0.2 -> 10.0.0.12", placed)
	}
	if n2.IsLocked("r1") {
		t.Error("the running replacement was not unlocked")
	}
	ts, _ := n2.Translations(ctx)
	if len(ts) != 1 || ts[0].ContainerID != "c2" || ts[0].Old.String() != "10.0.0.2" || ts[0].New.String() != "10.0.0.12" {
		t.Fatalf("translations on n2: %+v, want c2 10.0.0.2 -> 10.0.0.12", ts)
	}
}

// A held task that reached an earlier-moved peer through its namespace's translation
// is restored with that translation in its map (its sockets rewritten to the peer's
// new address); the map's own entries win.
func TestWithTranslations(t *testing.T) {
	m, dropped := withTranslations(map[string]string{"10.0.0.2": "10.0.0.12"}, [][2]string{{"10.0.0.3", "10.0.0.13"}, {"10.0.0.2", "10.0.0.99"}})
	if len(m) != 2 || m["10.0.0.2"] != "10.0.0.12" || m["10.0.0.3"] != "10.0.0.13" || len(dropped) != 0 {
		t.Fatalf("map %v (dropped %v), want own 10.0.0.2->10.0.0.12 and the translation 10.0.0.3->10.0.0.13", m, dropped)
	}
	if m, _ := withTranslations(nil, [][2]string{{"10.0.0.3", "10.0.0.13"}}); m["10.0.0.3"] != "10.0.0.13" {
		t.Fatalf("map %v from nil", m)
	}
	// Two old addresses onto one new one would make the rewrite refuse the whole map
	// (demo-drain: "both map to"), and the held task would restart fresh. The
	// translation is how the container's sockets know the peer (10.0.0.3, from before
	// its first move), the map's entry onto the same address (10.0.0.16, the peer's
	// address before its second move) is not: the translation wins (demo-drain step 3
	// lost the transfers between two holders when the map's entry won).
	m, dropped = withTranslations(map[string]string{"10.0.0.4": "10.0.0.14", "10.0.0.16": "10.0.0.25"}, [][2]string{{"10.0.0.3", "10.0.0.25"}})
	if len(m) != 2 || m["10.0.0.3"] != "10.0.0.25" || m["10.0.0.4"] != "10.0.0.14" || len(dropped) != 1 || dropped[0] != [2]string{"10.0.0.16", "10.0.0.25"} {
		t.Fatalf("map %v dropped %v: want 10.0.0.4->10.0.0.14 and 10.0.0.3->10.0.0.25, the map's 10.0.0.16->10.0.0.25 dropped", m, dropped)
	}
}

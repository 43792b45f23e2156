package coordinator

import (
	"reflect"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
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
	// A replacement without its address: nothing of its own to translate.
	e3 := node.DrainEvent{Node: "n3", ContainerID: "c3", Service: "bank_holder", Slot: 3}
	if got := heldAddresses(e3, tasks); len(got.Own) != 0 {
		t.Errorf("Own of a task whose replacement has no address: %v", got.Own)
	}
}

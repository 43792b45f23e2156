package restore

import (
	"fmt"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Each candidate node gets the same request: a keeper per moving task with an image
// and a network (its networks from its addresses), and every moving task's address
// on its own network (a task without an image starts no keeper but its address is
// still kept off); no request at all when no task needs a keeper.
func TestHeldKeepRequests(t *testing.T) {
	tasks := KeptTasks([]stack.Task{
		{Service: "s_a", Slot: 1, Node: "n2", DesiredState: "running", State: "running", Image: "img/a",
			Addresses: []stack.NetAddr{{Network: "s_net", IP: "10.0.0.5"}, {Network: "s_back", IP: "10.1.0.5"}}},
		{Service: "s_b", Slot: 2, Node: "n2", DesiredState: "running", State: "running",
			Addresses: []stack.NetAddr{{Network: "s_net", IP: "10.0.0.6"}}},
		{Service: "s_a", Slot: 2, Node: "n1", DesiredState: "running", State: "running", Image: "img/a",
			Addresses: []stack.NetAddr{{Network: "s_net", IP: "10.0.0.7"}}},
		{Service: "s_c", Slot: 1, Node: "n2", DesiredState: "shutdown", State: "running", Image: "img/c",
			Addresses: []stack.NetAddr{{Network: "s_net", IP: "10.0.0.8"}}},
	}, func(tk stack.Task) bool { return tk.Node == "n2" })
	reqs := heldKeepRequests("op1", tasks, []string{"n1", "n3"})
	if len(reqs) != 2 || reqs["n1"] == nil || reqs["n3"] == nil {
		t.Fatalf("requests for %v, want n1 and n3", reqs)
	}
	for n, r := range reqs {
		want := fmt.Sprint([]node.PreflightContainer{{Key: "s_a.1", Name: "drain-keep.op1.s_a.1", Image: "img/a"}})
		if got := fmt.Sprint(r.Containers); got != want {
			t.Errorf("%s: containers %s, want %s", n, got, want)
		}
		wantA := fmt.Sprint([]node.PreflightAddress{{Key: "s_a.1", IP: "10.0.0.5", Networks: []string{"s_net"}},
			{Key: "s_a.1", IP: "10.1.0.5", Networks: []string{"s_back"}}, {Key: "s_b.2", IP: "10.0.0.6", Networks: []string{"s_net"}}})
		if got := fmt.Sprint(r.Addresses); got != wantA {
			t.Errorf("%s: addresses %s, want %s", n, got, wantA)
		}
	}
	if r := heldKeepRequests("op1", tasks[1:], []string{"n1"}); r != nil {
		t.Errorf("tasks without an image: requests %v, want none", r)
	}
}

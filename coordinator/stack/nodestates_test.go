package stack

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func TestOnLiveNodes(t *testing.T) {
	nodes := []swarm.Node{{ID: "a", Status: swarm.NodeStatus{State: swarm.NodeStateReady}}, {ID: "b", Status: swarm.NodeStatus{State: swarm.NodeStateDown}}}
	tasks := []swarm.Task{{ID: "1", NodeID: "a"}, {ID: "2", NodeID: "b"}, {ID: "3"}}
	got := onLiveNodes(tasks, nodes)
	if len(got) != 2 || got[0].ID != "1" || got[1].ID != "3" {
		t.Fatalf("onLiveNodes = %+v, want tasks 1 and 3 (task 2 is on a down node)", got)
	}
	if got := onLiveNodes(tasks, nodes[:1]); len(got) != 3 {
		t.Fatalf("no down node: %d tasks, want all 3", len(got))
	}
	f := &FakeSwarm{Nodes: []string{"n1", "n2"}}
	f.SetNodeState("n2", "down")
	if st, _ := f.NodeStates(context.Background()); st["n1"] != "ready" || st["n2"] != "down" {
		t.Fatalf("FakeSwarm.NodeStates = %v", st)
	}
}

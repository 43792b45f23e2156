package restore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

func twoContainers() *store.Manifest {
	return &store.Manifest{ID: "s", Containers: []store.Container{
		{Service: "echo_server", Slot: 1, Node: "n1"}, {Service: "echo_client", Slot: 1, Node: "n2"}}}
}

func TestPlanTargetsAvoidsOriginalNodes(t *testing.T) {
	got, err := restore.PlanTargets(twoContainers(), nil, []string{"n1", "n2", "n3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got["echo_server.1"] == "n1" || got["echo_client.1"] == "n2" {
		t.Fatalf("restored on an original node: %v", got)
	}
}

func TestPlanTargetsExplicitAndErrors(t *testing.T) {
	got, err := restore.PlanTargets(twoContainers(), map[string]string{"echo_server.1": "n3"}, []string{"n1", "n2", "n3"}, false)
	if err != nil || got["echo_server.1"] != "n3" {
		t.Fatalf("explicit target: %v %v", got, err)
	}
	_, err = restore.PlanTargets(twoContainers(), map[string]string{"nope.1": "n3"}, []string{"n1", "n3"}, false)
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "nope.1") {
		t.Fatalf("unknown container: %v", err)
	}
	_, err = restore.PlanTargets(twoContainers(), map[string]string{"echo_server.1": "dead"}, []string{"n1", "n2"}, false)
	if !errors.Is(err, api.ErrNoWorker) {
		t.Fatalf("target without worker: %v", err)
	}
	_, err = restore.PlanTargets(twoContainers(), nil, []string{"n1"}, false)
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not enough nodes") {
		t.Fatalf("one node only: %v", err)
	}
	if _, err := restore.PlanTargets(twoContainers(), nil, []string{"n1"}, true); !errors.Is(err, api.ErrNoWorker) || !strings.Contains(err.Error(), "n2") {
		t.Fatalf("on original, original node without worker: want ErrNoWorker naming n2, got %v", err)
	}
}

// TestPlanTargetsOnOriginal: --on-original puts every container on its own original
// node (not merely "allows" those nodes: round robin would swap them), explicit ones
// aside.
func TestPlanTargetsOnOriginal(t *testing.T) {
	for _, nodes := range [][]string{{"n1", "n2"}, {"n2", "n1", "n3"}} {
		got, err := restore.PlanTargets(twoContainers(), nil, nodes, true)
		if err != nil {
			t.Fatal(err)
		}
		if got["echo_server.1"] != "n1" || got["echo_client.1"] != "n2" {
			t.Fatalf("nodes %v: not on their original nodes: %v", nodes, got)
		}
	}
	swapped := &store.Manifest{ID: "s", Containers: []store.Container{
		{Service: "echo_server", Slot: 1, Node: "n2"}, {Service: "echo_client", Slot: 1, Node: "n1"}}}
	if got, err := restore.PlanTargets(swapped, nil, []string{"n1", "n2"}, true); err != nil || got["echo_server.1"] != "n2" || got["echo_client.1"] != "n1" {
		t.Fatalf("swapped originals: not on their original nodes: %v %v", got, err)
	}
	got, err := restore.PlanTargets(twoContainers(), map[string]string{"echo_client.1": "n3"}, []string{"n1", "n2", "n3"}, true)
	if err != nil || got["echo_server.1"] != "n1" || got["echo_client.1"] != "n3" {
		t.Fatalf("explicit with on-original: %v %v", got, err)
	}
}

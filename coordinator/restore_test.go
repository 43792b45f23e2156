package coordinator_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

func twoContainers() *store.Manifest {
	return &store.Manifest{ID: "s", Containers: []store.Container{
		{Service: "echo_server", Slot: 1, Node: "n1"}, {Service: "echo_client", Slot: 1, Node: "n2"}}}
}

func TestPlanTargetsAvoidsOriginalNodes(t *testing.T) {
	got, err := coordinator.PlanTargets(twoContainers(), nil, []string{"n1", "n2", "n3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got["echo_server.1"] == "n1" || got["echo_client.1"] == "n2" {
		t.Fatalf("restored on an original node: %v", got)
	}
}

func TestPlanTargetsExplicitAndErrors(t *testing.T) {
	got, err := coordinator.PlanTargets(twoContainers(), map[string]string{"echo_server.1": "n3"}, []string{"n1", "n2", "n3"}, false)
	if err != nil || got["echo_server.1"] != "n3" {
		t.Fatalf("explicit target: %v %v", got, err)
	}
	_, err = coordinator.PlanTargets(twoContainers(), map[string]string{"nope.1": "n3"}, []string{"n1", "n3"}, false)
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "nope.1") {
		t.Fatalf("unknown container: %v", err)
	}
	_, err = coordinator.PlanTargets(twoContainers(), map[string]string{"echo_server.1": "dead"}, []string{"n1", "n2"}, false)
	if !errors.Is(err, api.ErrNoWorker) {
		t.Fatalf("target without worker: %v", err)
	}
	_, err = coordinator.PlanTargets(twoContainers(), nil, []string{"n1"}, false)
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not enough nodes") {
		t.Fatalf("one node only: %v", err)
	}
	if _, err := coordinator.PlanTargets(twoContainers(), nil, []string{"n1"}, true); err != nil {
		t.Fatalf("on original allowed: %v", err)
	}
}

package stack_test

import (
	"slices"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/coordinator/stack/stacktest"
)

// The conformance suite on the fake; coordinator/swarm_e2e_integration_test.go runs it
// on stack.Docker against a real swarm.
func TestFakeSwarmConformance(t *testing.T) {
	stacktest.Swarm(t, &stack.FakeSwarm{Nodes: []string{"n1", "n2"}, Network: "net", Subnet: "10.0.0.", Services: []string{"st_web"}}, "st", "st_web", 3)
}

func TestEligibleNodes(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	for _, c := range []struct {
		cs   []string
		want []string
	}{
		{nil, nodes},
		{[]string{"node.hostname==n2"}, []string{"n2"}},
		{[]string{"node.hostname != n2"}, []string{"n1", "n3"}},
		{[]string{"node.hostname==n9"}, nil},
		{[]string{"node.role==manager", "node.hostname!=n1"}, []string{"n2", "n3"}},
		{[]string{"node.labels.hostname==n1"}, nodes},
	} {
		if got := stack.EligibleNodes(nodes, c.cs); !slices.Equal(got, c.want) {
			t.Errorf("EligibleNodes(%v) = %v, want %v", c.cs, got, c.want)
		}
	}
	if !slices.Equal(nodes, []string{"n1", "n2", "n3"}) {
		t.Fatalf("EligibleNodes changed its input: %v", nodes)
	}
}

func TestFakeLabelsConformance(t *testing.T) {
	f := &stack.FakeLabels{}
	f.Set("st", "st_web", map[string]string{"a": "b"})
	stacktest.Labels(t, f, "st", "st_web", func(k, v string) {
		f.Set("st", "st_web", map[string]string{"a": "b", k: v})
	})
}

func TestFakeSwarmNodeAvailabilityConformance(t *testing.T) {
	stacktest.NodeAvailability(t, &stack.FakeSwarm{Nodes: []string{"n1", "n2"}}, "n2")
}

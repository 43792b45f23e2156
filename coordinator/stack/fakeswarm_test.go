package stack_test

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/coordinator/stack/stacktest"
)

// The conformance suite on the fake; coordinator/swarm_e2e_integration_test.go runs it
// on stack.Docker against a real swarm.
func TestFakeSwarmConformance(t *testing.T) {
	stacktest.Swarm(t, &stack.FakeSwarm{Nodes: []string{"n1", "n2"}, Network: "net", Subnet: "10.0.0.", Services: []string{"st_web"}}, "st", "st_web", 3)
}

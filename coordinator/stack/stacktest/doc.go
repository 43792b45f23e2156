// Package stacktest holds the conformance suite every stack.Swarm implementation
// (stack.Docker on a real swarm, stack.FakeSwarm) must pass.
package stacktest

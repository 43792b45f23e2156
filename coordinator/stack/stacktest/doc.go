// Package stacktest holds the conformance suite every stack.Swarm implementation
// (stack.Docker on a real swarm, stack.FakeSwarm) must pass: Swarm (scale, stop, tasks),
// Labels (service labels and their events), NodeAvailability (read and set a node's
// availability, what drains need).
package stacktest

package restore

import "github.com/swarmckpt/swarmckpt/protocol/node"

// StackLabel is the label Docker's stack deploy puts on a stack's services, networks
// and task containers (a restored container keeps it: restore copies every label but
// swarm's own).
const StackLabel = "com.docker.stack.namespace"

// Standalone is a container an exact-mode restore created for a swarm service: a
// standalone container carrying LabelService (docs/restore.md "Decision"). The
// coordinator counts the running ones as their service's tasks, so that a restored
// stack can be snapshotted, migrated and restored again.
type Standalone = node.Standalone

// StandaloneNet is a Standalone container's endpoint on one network.
type StandaloneNet = node.StandaloneNet

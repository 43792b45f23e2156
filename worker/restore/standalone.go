package restore

// StackLabel is the label Docker's stack deploy puts on a stack's services, networks
// and task containers (a restored container keeps it: restore copies every label but
// swarm's own).
const StackLabel = "com.docker.stack.namespace"

// Standalone is a container an exact-mode restore created for a swarm service: a
// standalone container carrying LabelService (docs/restore.md "Decision"). The
// coordinator counts the running ones as their service's tasks, so that a restored
// stack can be snapshotted, migrated and restored again.
type Standalone struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
	// Service is LabelService; Stack the stack label (empty if the container has none).
	Service string `json:"service"`
	Stack   string `json:"stack,omitempty"`
	// Labels are the container's io.swarmckpt.* labels.
	Labels   map[string]string `json:"labels,omitempty"`
	Running  bool              `json:"running"`
	State    string            `json:"state,omitempty"`
	Networks []StandaloneNet   `json:"networks,omitempty"`
}

// StandaloneNet is a Standalone container's endpoint on one network.
type StandaloneNet struct {
	Name    string   `json:"name"`
	IPv4    string   `json:"ipv4,omitempty"`
	IPv6    string   `json:"ipv6,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// InStack tells whether a restored container belongs to stack: by its stack label,
// or, without one, by its service name (stack deploy names services STACK_NAME).
func (s Standalone) InStack(stack string) bool {
	if s.Stack != "" {
		return s.Stack == stack
	}
	return len(s.Service) > len(stack)+1 && s.Service[:len(stack)+1] == stack+"_"
}

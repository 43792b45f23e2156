package protocol

import (
	"fmt"
	"strings"
)

// SubjectPrefix is the root of every NATS subject of this protocol version.
const SubjectPrefix = "swarmckpt.v1"

// NATS subjects. Every worker subscribes to NodeSubject(its node); the active coordinator
// subscribes to CoordinatorSubject(); CLIs send requests to RequestSubject().
// A message to a container goes to the subject of the container's node.

// NodeSubject is the subject a worker node listens on.
func NodeSubject(node string) string { return SubjectPrefix + ".node." + node }

// CoordinatorSubject is the subject the active coordinator listens on.
func CoordinatorSubject() string { return SubjectPrefix + ".coordinator" }

// RequestSubject is where CLIs send snapshot requests (request/reply).
func RequestSubject() string { return SubjectPrefix + ".request" }

// ValidToken reports whether s can be one token of a subject (a node name): non-empty,
// no '.', '*', '>' and no whitespace.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("protocol: empty subject token: %w", ErrMalformed)
	}
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("protocol: subject token %q contains one of '.', '*', '>' or whitespace; rename the node: %w", s, ErrMalformed)
	}
	return nil
}

// SubjectFor returns the subject to publish a message for addr on; containers need the
// container -> node map (nodeOf), coordinator and nodes do not.
func SubjectFor(a Addr, nodeOf func(container string) (string, bool)) (string, error) {
	switch a.Kind {
	case KindCoordinator:
		return CoordinatorSubject(), nil
	case KindNode:
		if err := ValidToken(a.ID); err != nil {
			return "", err
		}
		return NodeSubject(a.ID), nil
	case KindContainer:
		n, ok := nodeOf(a.ID)
		if !ok {
			return "", fmt.Errorf("protocol: no node known for %s: %w", a, ErrMalformed)
		}
		if err := ValidToken(n); err != nil {
			return "", err
		}
		return NodeSubject(n), nil
	}
	return "", fmt.Errorf("protocol: no subject for address %q: %w", a, ErrMalformed)
}

// PeerSubject is where containers of other nodes send a node's containers their
// messages (Chandy-Lamport markers). Apart from NodeSubject, which carries the
// coordinator's commands, so that NATS permissions can let agents publish markers to
// other nodes but no command.
func PeerSubject(node string) string { return SubjectPrefix + ".peer." + node }

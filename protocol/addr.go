package protocol

import (
	"fmt"
	"strings"
)

// AddrKind says what an Addr names.
type AddrKind uint8

// Address kinds.
const (
	KindNone        AddrKind = iota // the zero Addr
	KindCoordinator                 // the (active) coordinator of the stack
	KindContainer                   // one container: its state machine runs at its node's worker
	KindNode                        // a worker node as a whole
	KindClient                      // a CLI or scheduler that asked for a snapshot
)

// Addr is the sender or receiver of a message. It is comparable (usable as a map key) and
// encodes as text: "coordinator", "container/<id>", "node/<name>", "client/<id>".
// Routing a container's messages to its node is the transport's job (it knows the
// container -> node map from the snapshot request).
type Addr struct {
	Kind AddrKind
	ID   string
}

// Coordinator is the address of the coordinator.
var Coordinator = Addr{Kind: KindCoordinator}

// ContainerAddr is the address of container id.
func ContainerAddr(id string) Addr { return Addr{Kind: KindContainer, ID: id} }

// NodeAddr is the address of worker node name.
func NodeAddr(name string) Addr { return Addr{Kind: KindNode, ID: name} }

// ClientAddr is the address of client id.
func ClientAddr(id string) Addr { return Addr{Kind: KindClient, ID: id} }

// IsZero reports whether a is the zero Addr.
func (a Addr) IsZero() bool { return a.Kind == KindNone }

// String returns the text form.
func (a Addr) String() string {
	switch a.Kind {
	case KindNone:
		return ""
	case KindCoordinator:
		return "coordinator"
	case KindContainer:
		return "container/" + a.ID
	case KindNode:
		return "node/" + a.ID
	case KindClient:
		return "client/" + a.ID
	}
	return fmt.Sprintf("kind%d/%s", a.Kind, a.ID)
}

// ParseAddr parses the text form of an Addr.
func ParseAddr(s string) (Addr, error) {
	if s == "" {
		return Addr{}, nil
	}
	if s == "coordinator" {
		return Coordinator, nil
	}
	kind, id, ok := strings.Cut(s, "/")
	if !ok || id == "" {
		return Addr{}, fmt.Errorf("protocol: address %q: want coordinator, container/ID, node/NAME or client/ID: %w", s, ErrMalformed)
	}
	switch kind {
	case "container":
		return ContainerAddr(id), nil
	case "node":
		return NodeAddr(id), nil
	case "client":
		return ClientAddr(id), nil
	}
	return Addr{}, fmt.Errorf("protocol: address %q: unknown kind %q: %w", s, kind, ErrMalformed)
}

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Addr) UnmarshalText(b []byte) error {
	p, err := ParseAddr(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

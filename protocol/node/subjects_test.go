package node

import (
	"errors"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol"
)

func TestSubjects(t *testing.T) {
	nodeOf := func(c string) (string, bool) {
		return map[string]string{"a": "n1", "bad": "n.1"}[c], c == "a" || c == "bad"
	}
	if s, err := SubjectFor(protocol.ContainerAddr("a"), nodeOf); err != nil || s != "swarmckpt.v1.node.n1" {
		t.Errorf("container a: %q %v", s, err)
	}
	if s, err := SubjectFor(protocol.Coordinator, nodeOf); err != nil || s != "swarmckpt.v1.coordinator" {
		t.Errorf("coordinator: %q %v", s, err)
	}
	if _, err := SubjectFor(protocol.ContainerAddr("zz"), nodeOf); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := SubjectFor(protocol.ContainerAddr("bad"), nodeOf); !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("node with a dot: %v", err)
	}
	// The operation subjects are the ones agents of earlier builds served.
	if s := StopSubject("n1"); s != "swarmckpt.v1.agent.n1.stop" {
		t.Errorf("stop subject %q", s)
	}
	seen := map[string]Op{}
	for _, o := range Ops {
		s := o.Subject("n1")
		if prev, dup := seen[s]; dup {
			t.Errorf("operations %s and %s share subject %s", prev, o, s)
		}
		seen[s] = o
		if s == HeartbeatSubject {
			t.Errorf("operation %s collides with the heartbeat subject", o)
		}
	}
}

package registry

import (
	"errors"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, n := range []string{"blocking", "chandy-lamport", "uncoordinated", "minimal"} {
		a, err := Lookup(n)
		if err != nil || a.Name() != n {
			t.Errorf("Lookup(%q) = %v, %v", n, a, err)
		}
	}
	if _, err := Lookup("paxos"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup(paxos) err = %v, want ErrUnknown", err)
	}
}

package cut

import (
	"errors"
	"strings"
	"testing"
)

// pair builds a two-container state with one connection a<->b.
func pair(aSent, aAcked, aRecv, bSent, bAcked, bRecv uint64) State {
	return State{Containers: map[string]*Container{
		"a": {Conns: []Conn{{Local: "10.0.0.1:40000", Remote: "10.0.0.2:80", Peer: "b",
			Sent: aSent, Acked: aAcked, Received: aRecv}}},
		"b": {Conns: []Conn{{Local: "10.0.0.2:80", Remote: "10.0.0.1:40000", Peer: "a",
			Sent: bSent, Acked: bAcked, Received: bRecv}}},
	}}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		state State
		want  []Kind // violation kinds in order; empty = consistent
	}{
		{"in flight both ways", pair(100, 50, 20, 30, 20, 70), nil},
		{"quiet, all equal", pair(10, 10, 5, 5, 5, 10), nil},
		{"orphan a->b", pair(100, 50, 20, 30, 20, 101), []Kind{Orphan}},
		{"orphan b->a", pair(100, 50, 31, 30, 20, 70), []Kind{Orphan}},
		{"lost a->b", pair(100, 80, 20, 30, 20, 79), []Kind{Lost}},
		{"empty cut", State{}, nil},
		{"missing peer", State{Containers: map[string]*Container{
			"a": {Conns: []Conn{{Local: "x", Remote: "y", Peer: "b", Sent: 1}}},
		}}, []Kind{MissingEndpoint}},
		{"peer present, its end absent", State{Containers: map[string]*Container{
			"a": {Conns: []Conn{{Local: "x", Remote: "y", Peer: "b", Sent: 1}}},
			"b": {},
		}}, []Kind{MissingEndpoint}},
		{"external connection is not checked", State{Containers: map[string]*Container{
			"a": {Conns: []Conn{{Local: "x", Remote: "client", Sent: 1, Received: 9}}},
		}}, nil},
		{"duplicate endpoints", State{Containers: map[string]*Container{
			"a": {Conns: []Conn{{Local: "x", Remote: "y"}}},
			"c": {Conns: []Conn{{Local: "x", Remote: "y"}}},
			"b": {Conns: []Conn{{Local: "y", Remote: "x"}}},
		}}, []Kind{Duplicate}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.state)
			var got []Kind
			for _, v := range r.Violations {
				got = append(got, v.Violation)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("violations = %v, want %v\n%s", got, tc.want, strings.Join(r.Lines(), "\n"))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("violation %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			if r.Consistent() != (len(tc.want) == 0) {
				t.Fatalf("Consistent() = %v with violations %v", r.Consistent(), got)
			}
			err := r.Err()
			if (err != nil) != !r.Consistent() || (err != nil && !errors.Is(err, ErrInconsistent)) {
				t.Fatalf("Err() = %v, Consistent() = %v", err, r.Consistent())
			}
		})
	}
}

func TestCheckEvidenceNamesConnection(t *testing.T) {
	r := Check(pair(100, 50, 20, 30, 20, 101))
	if len(r.Channels) != 2 {
		t.Fatalf("checked %d directions, want 2", len(r.Channels))
	}
	lines := r.Lines()
	if len(lines) != 2 {
		t.Fatalf("lines = %q, want 2", lines)
	}
	want := "a -> b [10.0.0.1:40000->10.0.0.2:80] sent=100 acked=50 received=101 VIOLATION orphan: b holds 1 byte(s) a had not sent"
	if lines[0] != want {
		t.Fatalf("first evidence line\n got %q\nwant %q", lines[0], want)
	}
	if !strings.HasSuffix(lines[1], " ok") {
		t.Fatalf("second line %q should be ok", lines[1])
	}
	if !strings.HasPrefix(r.Summary(), "INCONSISTENT: 1 orphan") {
		t.Fatalf("summary %q", r.Summary())
	}
}

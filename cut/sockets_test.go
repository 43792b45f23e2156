package cut

import (
	"net/netip"
	"testing"
)

func sock(c, l, r string, rcvNxt, inq, writeSeq, outq uint32) Socket {
	return Socket{Container: c, Local: netip.MustParseAddrPort(l), Remote: netip.MustParseAddrPort(r),
		InqSeq: rcvNxt, InqLen: inq, OutqSeq: writeSeq, OutqLen: outq, HasStreamRecord: true}
}

func TestStateFromSocketsSequenceArithmetic(t *testing.T) {
	const a, b = "10.0.0.1:5000", "10.0.0.2:80"
	cases := []struct {
		name string
		x, y Socket // x is container "x" holding a->b, y holds b->a
		want []Kind
	}{
		// x wrote up to 1000, 300 unacked; y received up to 900 (in flight 100).
		{"in flight", sock("x", a, b, 50, 0, 1000, 300), sock("y", b, a, 900, 10, 50, 0), nil},
		// Same across the 2^32 wrap: x's write_seq wrapped past zero.
		{"wrap", sock("x", a, b, 50, 0, 100, 300), sock("y", b, a, 1<<32-100, 0, 50, 0), nil},
		{"orphan", sock("x", a, b, 50, 0, 1000, 300), sock("y", b, a, 1001, 0, 50, 0), []Kind{Orphan}},
		{"orphan across wrap", sock("x", a, b, 50, 0, 1<<32-5, 0), sock("y", b, a, 3, 0, 50, 0), []Kind{Orphan}},
		{"lost", sock("x", a, b, 50, 0, 1000, 300), sock("y", b, a, 699, 0, 50, 0), []Kind{Lost}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := StateFromSockets([]string{"x", "y"}, []Socket{tc.x, tc.y}, nil)
			r := Check(st)
			if len(r.Channels) != 2 {
				t.Fatalf("checked %d directions, want 2", len(r.Channels))
			}
			if len(r.Violations) != len(tc.want) {
				t.Fatalf("violations %v, want %v", r.Lines(), tc.want)
			}
			for i, k := range tc.want {
				if r.Violations[i].Violation != k {
					t.Fatalf("violation %d = %v, want %v", i, r.Violations[i].Violation, k)
				}
			}
		})
	}
}

func TestStateFromSocketsMissingPeer(t *testing.T) {
	// y owns 10.0.0.2 (it has a socket on it) but recorded no end of x's connection.
	x := sock("x", "10.0.0.1:5000", "10.0.0.2:80", 0, 0, 10, 0)
	y := sock("y", "10.0.0.2:81", "10.0.0.3:9", 0, 0, 0, 0)
	r := Check(StateFromSockets([]string{"x", "y"}, []Socket{x, y}, nil))
	if len(r.Violations) != 1 || r.Violations[0].Violation != MissingEndpoint || r.Violations[0].To != "y" {
		t.Fatalf("want one missing-endpoint violation x -> y, got %v", r.Lines())
	}
	if r.External != 1 {
		t.Fatalf("external = %d, want 1 (y's connection to 10.0.0.3)", r.External)
	}
}

func TestStateFromSocketsWithoutStreamIsNotChecked(t *testing.T) {
	x := sock("x", "10.0.0.1:5000", "10.0.0.2:80", 0, 0, 10, 0)
	y := sock("y", "10.0.0.2:80", "10.0.0.1:5000", 999, 0, 0, 0)
	y.HasStreamRecord = false
	r := Check(StateFromSockets([]string{"x", "y"}, []Socket{x, y}, nil))
	if !r.Consistent() || len(r.Channels) != 0 || len(r.Violations) != 0 {
		t.Fatalf("want the pair left out (y's garbage counters not compared), got %s: %v", r.Summary(), r.Lines())
	}
}

package coord

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// referenceRecord is Record as json.Marshal of a Record struct (how it was written
// before the records were assembled from parts).
func referenceRecord(t *testing.T, b *Base, phase, reason string, state any) []byte {
	t.Helper()
	r := Record{Algorithm: b.Name, Epoch: b.Epoch, Snapshot: b.Snapshot, Phase: phase, Reason: reason, Containers: b.Containers}
	if len(b.Containers) > 2 && complete(b.Containers) {
		r.Containers, r.AllPeers = withoutPeers(b.Containers), true
	}
	if state != nil {
		s, err := json.Marshal(state)
		if err != nil {
			t.Fatal(err)
		}
		r.State = s
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appended is a state that encodes itself (JSONAppender) as json.Marshal would.
type appended map[string]int

func (a appended) AppendJSON(buf []byte) []byte {
	s, _ := json.Marshal(map[string]int(a))
	return append(buf, s...)
}

// TestRecordEncoding: Record writes exactly the bytes json.Marshal writes for a Record,
// for plain and odd ids (escapes, HTML characters, non-ASCII, invalid UTF-8), the
// complete graph (all_peers), every kind of state, and a reason.
func TestRecordEncoding(t *testing.T) {
	c := func(id string, peers ...string) protocol.Container {
		return protocol.Container{ID: id, Node: "node-" + id, Peers: peers}
	}
	sets := map[string][]protocol.Container{
		"ring":     {c("a", "b", "c"), c("b", "a", "c"), c("c", "a", "b"), c("d")},
		"complete": {c("a", "b", "c"), c("b", "a", "c"), c("c", "a", "b")},
		"two":      {c("a", "b"), c("b", "a")},
		"odd ids":  {c("x<y>&z", "q\"\\\n"), c("q\"\\\n", "x<y>&z"), c("é\u2028\xff"), c("\x7f\t")},
	}
	states := map[string]any{
		"nil":      nil,
		"nil map":  map[string]int(nil),
		"map":      map[string][]protocol.ConnCounter{"b<": {{Peer: "a&", Sent: 1, Received: 2}}, "a": nil},
		"raw":      rawState(`{"x":"<&>"}`),
		"raw nil":  rawState(nil),
		"appender": appended{"z": 1, "a<": 2},
	}
	for sn, cs := range sets {
		for stn, st := range states {
			for _, reason := range []string{"", "timeout <after> & \"so on\""} {
				b := &Base{}
				b.Init("minimal", algorithms.Config{})
				req := protocol.Envelope{Type: protocol.TypeSnapshotRequest, Snapshot: "s<1>",
					Body: &protocol.SnapshotRequest{Containers: cs}}
				if _, err := b.Start(req); err != nil {
					t.Fatalf("%s: %v", sn, err)
				}
				for _, phase := range []string{PhaseActive, PhaseCommitted} {
					got, want := b.Record(phase, reason, st), referenceRecord(t, b, phase, reason, st)
					if !bytes.Equal(got, want) {
						t.Errorf("%s, state %s, reason %q:\n got %s\nwant %s", sn, stn, reason, got, want)
					}
				}
			}
		}
	}
}

package uncoordinated

import (
	"encoding/json"
	"flag"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
	"github.com/swarmckpt/swarmckpt/protocol"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

func TestConformance(t *testing.T) { algotest.Run(t, Algorithm()) }

func FuzzSchedule(f *testing.F) { algotest.Fuzz(f, Algorithm()) }

func TestScripts(t *testing.T) { algotest.RunScripts(t, Algorithm(), "testdata/*.txt", *rewrite) }

// TestHistoryEncoding: a history encodes itself in a record exactly as json.Marshal
// encodes it (nil history, nil and empty checkpoint lists and counters, ids that need
// escapes).
func TestHistoryEncoding(t *testing.T) {
	cases := []History{
		nil,
		{},
		{"b": nil, "a": {}, "c": {{Snapshot: "s1", Epoch: 1}, {Snapshot: "s<2>", Epoch: 1 << 62, Conns: []protocol.ConnCounter{}}}},
		{"c10": {{Snapshot: "snap-1", Epoch: 3, Conns: []protocol.ConnCounter{{Peer: "c9", Sent: 5, Received: 6}, {Peer: "c11"}}}},
			"c9":          {{Snapshot: "snap-1", Epoch: 3, Conns: []protocol.ConnCounter{{Peer: protocol.AllPeers, Sent: 1}}}},
			"x\"&\\é\xff": {{Snapshot: "\u2028", Conns: []protocol.ConnCounter{{Peer: "<p>"}}}}},
	}
	for _, h := range cases {
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("history %v:\n got %s\nwant %s", h, got, want)
		}
	}
}

package minimal

import (
	"encoding/json"
	"errors"
	"flag"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
	"github.com/swarmckpt/swarmckpt/protocol"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

func TestConformance(t *testing.T) { algotest.Run(t, Algorithm()) }

func FuzzSchedule(f *testing.F) { algotest.Fuzz(f, Algorithm()) }

func TestScripts(t *testing.T) { algotest.RunScripts(t, Algorithm(), "testdata/*.txt", *rewrite) }

func TestOnlyDirtyContainersDump(t *testing.T) {
	d, err := algotest.NewDriver(Algorithm(), algotest.Options{Containers: algotest.Topology(6, 2), Config: algotest.TestConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Request("s1"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	d.Traffic("c0", "c1", 10) // only c0 and c1 carry bytes
	d.CrashCoordinator()      // bases must survive a restart
	if err := d.Request("s2"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	if err := d.Check(true); err != nil {
		t.Fatal(err)
	}
	if got := d.Committed(); len(got) != 2 {
		t.Fatalf("committed %v, want s1 and s2", got)
	}
	for id, r := range d.Recordings["s2"] {
		wantReuse := id != "c0" && id != "c1"
		if (r.ReusedFrom == "s1") != wantReuse {
			t.Errorf("%s: reused from %q, want reuse=%v", id, r.ReusedFrom, wantReuse)
		}
	}
	if len(d.Recordings["s2"]) != 6 {
		t.Fatalf("s2 has %d recordings, want 6", len(d.Recordings["s2"]))
	}
	// Third snapshot without traffic: everyone reuses, c0 and c1 from s2.
	if err := d.Request("s3"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	for id, r := range d.Recordings["s3"] {
		want := "s1"
		if id == "c0" || id == "c1" {
			want = "s2"
		}
		if r.ReusedFrom != want {
			t.Errorf("s3 %s: reused from %q, want %q", id, r.ReusedFrom, want)
		}
	}
}

// A worker that counts a container's traffic only in aggregate (its interfaces'
// counters, Peer protocol.AllPeers) still lets an idle container reuse its images, and
// a coordinator continued from the committed record of the last snapshot (as the
// coordinator service does for each new snapshot of a stack) keeps the bases.
func TestAggregateCountersAndContinue(t *testing.T) {
	cs := []protocol.Container{{ID: "a", Peers: []string{"b"}}, {ID: "b", Peers: []string{"a"}}}
	agg := func(sent, recv uint64) []protocol.ConnCounter {
		return []protocol.ConnCounter{{Peer: protocol.CPUTime, Sent: 5000}, {Peer: protocol.AllPeers, Sent: sent, Received: recv}}
	}
	// snap runs one snapshot on a coordinator continued from rec, with the given
	// lock-time counters, and returns the dump commands and the committed record.
	snap := func(rec []byte, id string, epoch uint64, counters map[string][]protocol.ConnCounter) (map[string]*protocol.Dump, []byte) {
		t.Helper()
		m, err := Algorithm().(algorithms.Continuer).ContinueCoordinator(algotest.TestConfig(), rec)
		if err != nil {
			t.Fatal(err)
		}
		c := m.(*Coordinator)
		c.Base.Epoch = epoch - 1
		if err := c.Step(protocol.Envelope{Type: protocol.TypeSnapshotRequest, Snapshot: id, Body: &protocol.SnapshotRequest{Containers: cs}}); err != nil {
			t.Fatal(err)
		}
		c.Ready()
		c.Advance()
		from := func(ct string) protocol.Addr { return protocol.ContainerAddr(ct) }
		for _, ct := range cs {
			if err := c.Step(protocol.Envelope{Type: protocol.TypeLockDone, Snapshot: id, Epoch: epoch, From: from(ct.ID), Body: &protocol.Result{Conns: counters[ct.ID]}}); err != nil {
				t.Fatal(err)
			}
		}
		dumps := map[string]*protocol.Dump{}
		for _, env := range c.Ready().Messages {
			if env.Type == protocol.TypeDump {
				dumps[env.To.ID] = env.Body.(*protocol.Dump)
			}
		}
		c.Advance()
		for _, ct := range cs {
			st := &protocol.DumpStats{ReusedFrom: dumps[ct.ID].ReuseFrom}
			if st.ReusedFrom == "" {
				st.Conns = counters[ct.ID]
			}
			if err := c.Step(protocol.Envelope{Type: protocol.TypeDumpDone, Snapshot: id, Epoch: epoch, From: from(ct.ID), Body: &protocol.Result{Dump: st}}); err != nil {
				t.Fatal(err)
			}
		}
		var out []byte
		for _, a := range c.Ready().Actions {
			if a.Kind == algorithms.ActCommit {
				out = a.Record
			}
		}
		if out == nil {
			t.Fatalf("%s: no commit", id)
		}
		return dumps, out
	}
	_, rec1 := snap(nil, "s1", 1, map[string][]protocol.ConnCounter{"a": agg(10, 20), "b": agg(30, 40)})
	// b carried traffic since s1, a did not.
	dumps, rec2 := snap(rec1, "s2", 2, map[string][]protocol.ConnCounter{"a": agg(10, 20), "b": agg(31, 40)})
	if dumps["a"].ReuseFrom != "s1" || dumps["b"].ReuseFrom != "" {
		t.Fatalf("s2: a reuse %q (want s1), b reuse %q (want a fresh dump)", dumps["a"].ReuseFrom, dumps["b"].ReuseFrom)
	}
	dumps, _ = snap(rec2, "s3", 3, map[string][]protocol.ConnCounter{"a": agg(10, 20), "b": agg(31, 40)})
	if dumps["a"].ReuseFrom != "s1" || dumps["b"].ReuseFrom != "s2" {
		t.Fatalf("s3: a reuse %q (want s1), b reuse %q (want s2)", dumps["a"].ReuseFrom, dumps["b"].ReuseFrom)
	}
	// A container that used CPU since (same traffic) is dirty too.
	cpu := agg(10, 20)
	cpu[0].Sent++
	dumps, _ = snap(rec2, "s3c", 3, map[string][]protocol.ConnCounter{"a": cpu, "b": agg(31, 40)})
	if dumps["a"].ReuseFrom != "" {
		t.Fatalf("a container that used CPU reused %q", dumps["a"].ReuseFrom)
	}
	// A container without a reading (an older worker) is dirty.
	dumps, _ = snap(rec2, "s3b", 3, map[string][]protocol.ConnCounter{"a": nil, "b": agg(31, 40)})
	if dumps["a"].ReuseFrom != "" {
		t.Fatalf("a container without counters reused %q", dumps["a"].ReuseFrom)
	}
	// A container that left the stack loses its base.
	var bases struct {
		State map[string]Base `json:"state"`
	}
	if err := json.Unmarshal(rec2, &bases); err != nil || len(bases.State) != 2 {
		t.Fatalf("s2's record: %v bases %v, want a and b", err, bases.State)
	}
	cs = cs[:1]
	cs[0].Peers = nil
	_, rec4 := snap(rec2, "s4", 4, map[string][]protocol.ConnCounter{"a": agg(10, 20)})
	bases.State = nil
	if err := json.Unmarshal(rec4, &bases); err != nil || len(bases.State) != 1 || bases.State["a"].Snapshot != "s1" {
		t.Fatalf("s4's record: %v bases %v, want only a's (s1)", err, bases.State)
	}
	// Only a committed minimal record continues.
	if _, err := ContinueCoordinator(algotest.TestConfig(), []byte(`{"algorithm":"blocking","phase":"committed"}`)); !errors.Is(err, algorithms.ErrBadRecord) {
		t.Fatalf("continue from another algorithm's record: %v, want ErrBadRecord", err)
	}
}

// TestBasesEncoding: the bases encode themselves in a record exactly as json.Marshal
// encodes a map[string]Base (nil map, nil and empty counters, ids that need escapes).
func TestBasesEncoding(t *testing.T) {
	cases := []map[string]Base{
		nil,
		{},
		{"b": {Snapshot: "s1", Conns: nil}, "a": {Snapshot: "s<2>", Conns: []protocol.ConnCounter{}}},
		{"c9": {Snapshot: "snap-1", Conns: []protocol.ConnCounter{{Peer: "c10", Sent: 1 << 60, Received: 0}, {Peer: "c8", Sent: 7, Received: 9}}},
			"c10":         {Snapshot: "snap-2", Conns: []protocol.ConnCounter{{Peer: protocol.AllPeers, Sent: 3}, {Peer: protocol.CPUTime, Received: 4}}},
			"x\"&\\é\xff": {Snapshot: "\u2028", Conns: []protocol.ConnCounter{{Peer: "<p>"}}},
			// A real worker's per-socket counters (Local set) and its CPU time.
			"sock": {Snapshot: "s3", Conns: []protocol.ConnCounter{{Peer: "10.0.0.3:9000", Local: "10.0.0.2:40000", Sent: 200, Received: 100}, {Peer: protocol.CPUTime, Sent: 5}}}},
	}
	for _, m := range cases {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := baseMap(m).AppendJSON(nil); string(got) != string(want) {
			t.Errorf("bases %v:\n got %s\nwant %s", m, got, want)
		}
	}
}

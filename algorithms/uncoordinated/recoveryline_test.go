package uncoordinated

import (
	"errors"
	"fmt"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
	"github.com/swarmckpt/swarmckpt/protocol"
)

func cp(s string, conns ...protocol.ConnCounter) Checkpoint {
	return Checkpoint{Snapshot: s, Conns: conns}
}
func cc(peer string, sent, recv uint64) protocol.ConnCounter {
	return protocol.ConnCounter{Peer: peer, Sent: sent, Received: recv}
}

func TestRecoveryLineDomino(t *testing.T) {
	// b sends 5, a receives and checkpoints (a1); a sends 10, b receives and
	// checkpoints (b1); b sends 5 more, a receives and checkpoints (a2). Every
	// checkpoint follows a receive whose send is after the other's latest
	// checkpoint, so the line falls all the way back (the domino effect).
	cs := []protocol.Container{{ID: "a", Peers: []string{"b"}}, {ID: "b", Peers: []string{"a"}}}
	h := History{
		"a": {cp("1", cc("b", 0, 5)), cp("3", cc("b", 10, 10))},
		"b": {cp("2", cc("a", 5, 10))},
	}
	l, err := RecoveryLine(cs, h)
	if err != nil {
		t.Fatal(err)
	}
	if l.Index["a"] != -1 || l.Index["b"] != -1 || l.Total != 3 || l.Max != 2 {
		t.Fatalf("line %+v; want both at their initial state, a 2 and b 1 rollbacks", l)
	}
	if s := l.Snapshot(h, "a"); s != "" {
		t.Fatalf("snapshot of a = %q, want initial", s)
	}
}

func TestRecoveryLineKeepsConsistentLatest(t *testing.T) {
	cs := []protocol.Container{{ID: "a", Peers: []string{"b"}}, {ID: "b", Peers: []string{"a", "c"}}, {ID: "c", Peers: []string{"b"}}}
	h := History{
		"a": {cp("1", cc("b", 5, 0)), cp("2", cc("b", 8, 0))},
		"b": {cp("1", cc("a", 0, 5), cc("c", 0, 0)), cp("2", cc("a", 0, 9), cc("c", 1, 0))},
		"c": {cp("1", cc("b", 0, 0)), cp("2", cc("b", 0, 1))},
	}
	// b@2 received 9 from a but a sent at most 8: b rolls back to 1; then c@2
	// received 1 from b which b@1 never sent: c rolls back to 1. a keeps 2.
	l, err := RecoveryLine(cs, h)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 1, "b": 0, "c": 0}
	for id, i := range want {
		if l.Index[id] != i {
			t.Errorf("%s: index %d, want %d (line %+v)", id, l.Index[id], i, l)
		}
	}
	if l.RolledBack["c"] != 1 || l.Total != 2 {
		t.Errorf("rollbacks %+v total %d; want c=1, total 2", l.RolledBack, l.Total)
	}
}

func TestRecoveryLineRejectsUnknownPeer(t *testing.T) {
	if _, err := RecoveryLine([]protocol.Container{{ID: "a", Peers: []string{"x"}}}, History{}); err == nil {
		t.Fatal("peer outside the set accepted")
	}
}

// historyOf rebuilds recordings for a line, to check it with the cut checker.
func recordingsOf(cs []protocol.Container, h History, l Line) map[string]algotest.Recording {
	out := map[string]algotest.Recording{}
	for _, c := range cs {
		var conns []protocol.ConnCounter
		if i := l.Index[c.ID]; i >= 0 {
			conns = h[c.ID][i].Conns
		} else {
			for _, p := range c.Peers {
				conns = append(conns, cc(p, 0, 0))
			}
		}
		out[c.ID] = algotest.Recording{Conns: conns}
	}
	return out
}

// TestUncoordinatedCutUnderTrafficIsCaught is the negative test: independent
// checkpoints taken under traffic are not a consistent cut, the checker says which
// channel is wrong, and the recovery line over the same images is consistent.
func TestUncoordinatedCutUnderTrafficIsCaught(t *testing.T) {
	caught, rolled := 0, 0
	for seed := uint64(1); seed <= 30; seed++ {
		cs := algotest.Topology(6, 2)
		d, err := algotest.NewDriver(Algorithm(), algotest.Options{Containers: cs, Config: algotest.TestConfig(), Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 4; i++ {
			if err := d.Request(fmt.Sprintf("s%d", i)); err != nil {
				t.Fatal(err)
			}
			for d.DeliverOne(false) {
				d.RandomTraffic()
				d.RandomTraffic()
			}
		}
		d.Settle()
		if err := d.Check(false); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		committed := d.Committed()
		if len(committed) != 4 {
			t.Fatalf("seed %d: committed %v, want 4", seed, committed)
		}
		for _, s := range committed {
			if err := algotest.CheckCut(cs, d.Recordings[s]); err != nil {
				if !errors.Is(err, algotest.ErrInconsistent) {
					t.Fatalf("checker error %v does not wrap ErrInconsistent", err)
				}
				caught++
			}
		}
		h, err := HistoryFromRecord(d.Record())
		if err != nil {
			t.Fatal(err)
		}
		if len(h["c0"]) != 4 {
			t.Fatalf("seed %d: history of c0 has %d checkpoints, want 4", seed, len(h["c0"]))
		}
		l, err := RecoveryLine(cs, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := algotest.CheckCut(cs, recordingsOf(cs, h, l)); err != nil {
			t.Fatalf("seed %d: recovery line %+v is inconsistent: %v", seed, l, err)
		}
		rolled += l.Total
	}
	if caught == 0 {
		t.Fatal("no uncoordinated cut under traffic was inconsistent in 30 seeds: the checker or the traffic model is broken")
	}
	if rolled == 0 {
		t.Fatal("the recovery line never rolled back although cuts were inconsistent")
	}
	t.Logf("inconsistent committed cuts: %d of 120; total rollbacks %d", caught, rolled)
}

// TestRecoveryLineIsMaximum compares with brute force on small random histories.
func TestRecoveryLineIsMaximum(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		cs := algotest.Topology(3, 1)
		d, _ := algotest.NewDriver(Algorithm(), algotest.Options{Containers: cs, Config: algotest.TestConfig(), Seed: seed})
		for i := 1; i <= 3; i++ {
			_ = d.Request(fmt.Sprintf("s%d", i))
			for d.DeliverOne(false) {
				d.RandomTraffic()
			}
		}
		d.Settle()
		h, err := HistoryFromRecord(d.Record())
		if err != nil {
			t.Fatal(err)
		}
		l, err := RecoveryLine(cs, h)
		if err != nil {
			t.Fatal(err)
		}
		// Enumerate every combination; each consistent one must be <= the line.
		n := len(h["c0"]) + 1
		for i := -1; i < n-1; i++ {
			for j := -1; j < n-1; j++ {
				for k := -1; k < n-1; k++ {
					c := Line{Index: map[string]int{"c0": i, "c1": j, "c2": k}}
					if algotest.CheckCut(cs, recordingsOf(cs, h, c)) != nil {
						continue
					}
					if i > l.Index["c0"] || j > l.Index["c1"] || k > l.Index["c2"] {
						t.Fatalf("seed %d: consistent (%d,%d,%d) is later than the line %v", seed, i, j, k, l.Index)
					}
				}
			}
		}
	}
}

// FuzzRecoveryLine: whatever the schedule and traffic, the recovery line over the
// committed history is a consistent cut.
func FuzzRecoveryLine(f *testing.F) {
	f.Add(uint64(1), uint8(6), uint8(3))
	f.Add(uint64(7), uint8(12), uint8(8))
	f.Add(uint64(42), uint8(2), uint8(20))
	f.Fuzz(func(t *testing.T, seed uint64, n, snaps uint8) {
		cs := algotest.Topology(2+int(n)%14, 3)
		d, err := algotest.NewDriver(Algorithm(), algotest.Options{Containers: cs, Config: algotest.TestConfig(), Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 1+int(snaps)%10; i++ {
			_ = d.Request(fmt.Sprintf("s%d", i))
			for d.DeliverOne(false) {
				d.RandomTraffic()
			}
		}
		d.Settle()
		h, err := HistoryFromRecord(d.Record())
		if err != nil {
			t.Fatal(err)
		}
		l, err := RecoveryLine(cs, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := algotest.CheckCut(cs, recordingsOf(cs, h, l)); err != nil {
			t.Fatalf("recovery line %v inconsistent: %v", l.Index, err)
		}
	})
}

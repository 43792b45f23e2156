package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// queued is one node whose dumps cost exactly 100 ms each (a plain delay: no CPU
// sharing, no start delay, a disk too fast to matter), no traffic.
func queued(n, slots int) Config {
	cfg := DefaultConfig()
	cfg.Containers, cfg.Nodes, cfg.Rounds = n, 1, 1
	cfg.Graph, cfg.IdleFraction = Ring, 1
	cfg.MemMiB = make([]float64, n)
	for i := range cfg.MemMiB {
		cfg.MemMiB[i] = 0.001
	}
	cfg.DiskMBps, cfg.DumpOverheadMs, cfg.DumpStartMs = 1e9, 100, 0
	cfg.WorkerSlots = slots
	return cfg
}

// TestWorkerSlotsQueueActions: with WorkerSlots k, a node's worker runs at most k
// dumps at once and the others wait in arrival order, the wait counted in the dump's
// time (as the agent times it): 4 independent dumps of 100 ms take 100, 200, 300 and
// 400 ms on one slot, 100 and 200 ms on two, 100 ms each without a limit.
func TestWorkerSlotsQueueActions(t *testing.T) {
	for _, tc := range []struct {
		slots         int
		p50, max, lat float64
	}{
		{slots: 0, p50: 100, max: 100},
		{slots: 1, p50: 200, max: 400},
		{slots: 2, p50: 100, max: 200},
		{slots: 4, p50: 100, max: 100},
	} {
		t.Run(fmt.Sprintf("slots=%d", tc.slots), func(t *testing.T) {
			rep, err := Run(queued(4, tc.slots), byName(t, "uncoordinated"))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != "committed" || len(rep.Violations) > 0 {
				t.Fatalf("not a clean commit:\n%s", rep)
			}
			if math.Abs(rep.DumpTime.P50-tc.p50) > 1 || math.Abs(rep.DumpTime.Max-tc.max) > 1 {
				t.Fatalf("dump time p50 %.1f max %.1f ms, want %.0f and %.0f", rep.DumpTime.P50, rep.DumpTime.Max, tc.p50, tc.max)
			}
		})
	}
}

// TestWorkerSlotsSlowTheSnapshot: the same stack under blocking takes longer with one
// slot (every lock, freeze, dump, thaw and unlock of the node waits its turn) than
// without a limit, and still commits a consistent cut with nothing left held.
func TestWorkerSlotsSlowTheSnapshot(t *testing.T) {
	free, err := Run(queued(4, 0), byName(t, "blocking"))
	if err != nil {
		t.Fatal(err)
	}
	one, err := Run(queued(4, 1), byName(t, "blocking"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range []*Report{free, one} {
		if rep.Outcome != "committed" || len(rep.Violations) > 0 || !rep.Verdict.Consistent() {
			t.Fatalf("not a clean, consistent commit:\n%s", rep)
		}
	}
	// 4 dumps of 100 ms one after the other instead of at once: at least 300 ms more.
	if one.LatencyMs < free.LatencyMs+300 {
		t.Fatalf("one slot: %.1f ms, no limit: %.1f ms; want the queued snapshot at least 300 ms slower", one.LatencyMs, free.LatencyMs)
	}
}

// TestWorkerSlotsUnderFaults: a node's worker queue survives its agent's crash (the
// queued roles die with it, the restarted ones queue again) and lost messages: every
// algorithm keeps its invariants with one slot per node and every container a peer
// of every other.
func TestWorkerSlotsUnderFaults(t *testing.T) {
	for _, alg := range realAlgorithms() {
		for _, fs := range []string{"worker-crash=1", "worker-crash=2,loss=0.02", "coordinator-crash=1,worker-crash=1,loss=0.05,dup=0.05"} {
			f, err := ParseFaults(fs)
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 3; seed++ {
				cfg := small()
				cfg.Graph, cfg.Seed, cfg.Faults = Star, seed, f
				cfg.WorkerSlots, cfg.AllPeers = 1, true
				cfg.TimeoutTicks, cfg.WatchdogGraceTicks = 100, 30
				rep, err := Run(cfg, alg)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Violations) > 0 {
					t.Fatalf("%s %s seed %d: invariants violated:\n%s", alg.Name(), fs, seed, rep)
				}
				if rep.Outcome == "committed" && alg.Guarantees().ConsistentCut && !rep.Verdict.Consistent() {
					t.Fatalf("%s %s seed %d: committed an inconsistent cut:\n%s", alg.Name(), fs, seed, rep)
				}
			}
		}
	}
}

// TestAllPeersRequest: with AllPeers every container's request names every other
// container as a peer, while the traffic keeps to the graph (a star: one connection
// per client); without it the peers are the graph's neighbours.
func TestAllPeersRequest(t *testing.T) {
	for _, all := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Containers, cfg.Nodes, cfg.Graph, cfg.AllPeers = 6, 3, Star, all
		r := &runner{cfg: cfg, alg: byName(t, "chandy-lamport"), rng: rand.New(rand.NewPCG(cfg.Seed, 1)), dueAt: map[uint64][]int32{}}
		if err := r.build(); err != nil {
			t.Fatal(err)
		}
		if len(r.w.conns) != 5 {
			t.Fatalf("all peers %v: %d connections, want the star's 5", all, len(r.w.conns))
		}
		for i, c := range r.req {
			want := 1 // a client's server
			if i == 0 {
				want = 5
			}
			if all {
				want = 5
			}
			if len(c.Peers) != want {
				t.Fatalf("all peers %v: container %s has peers %v, want %d", all, c.ID, c.Peers, want)
			}
		}
	}
}

// TestAllPeersCostsChandyLamportMore: chandy-lamport on a star whose containers are
// all each other's peers sends a marker to every peer and unlocks each as its marker
// arrives: more messages and a longer snapshot than with the star's neighbours only,
// and still a consistent cut.
func TestAllPeersCostsChandyLamportMore(t *testing.T) {
	var reps [2]*Report
	for k, all := range []bool{false, true} {
		cfg := labLike(12)
		cfg.Graph, cfg.AllPeers, cfg.Rounds = Star, all, 1
		cfg.LockCPUMs = 5
		rep, err := Run(cfg, byName(t, "chandy-lamport"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outcome != "committed" || len(rep.Violations) > 0 || !rep.Verdict.Consistent() {
			t.Fatalf("all peers %v: not a clean, consistent commit:\n%s", all, rep)
		}
		reps[k] = rep
	}
	// Markers: 11 + 11 from the clients and server (star) vs 12 x 11 (all peers).
	if reps[1].Messages < reps[0].Messages+12*11-22 {
		t.Fatalf("messages: %d with all peers, %d with the star's; want %d more", reps[1].Messages, reps[0].Messages, 12*11-22)
	}
	if reps[1].LatencyMs <= reps[0].LatencyMs {
		t.Fatalf("latency %.1f ms with all peers, %.1f with the star's: want longer", reps[1].LatencyMs, reps[0].LatencyMs)
	}
}

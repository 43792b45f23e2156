package sim

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/golden.txt from the current simulator")

// goldenConfigs are small runs covering every model the simulator has: each graph,
// several rounds, faults (loss, duplication, worker and coordinator crashes,
// partitions, watchdogs firing), hosts with shared CPUs, the worker queue and the
// all-peers request.
func goldenConfigs() map[string]Config {
	out := map[string]Config{}
	c := small()
	c.Rounds, c.Seed = 3, 3
	out["ring-24"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Rounds, c.Seed = 60, 8, 3, 4
	out["ring-60"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Graph, c.Rounds, c.Seed = 80, 10, Tiers, 4, 2
	out["tiers-80"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Graph, c.Seed = 50, 5, Pipeline, 6
	out["pipeline-50"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Graph, c.Rounds, c.Seed = 40, 5, AllToAll, 3, 11
	c.Faults = Faults{Loss: 0.05, Dup: 0.05, WorkerCrashes: 2, Partitions: 1, CoordinatorCrash: true}
	c.TimeoutTicks, c.WatchdogGraceTicks = 60, 10
	out["faults-all-to-all-40"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Rounds, c.Seed = 50, 5, 3, 9
	c.Faults = Faults{WorkerCrashes: 3, CoordinatorCrash: true}
	out["crashes-ring-50"] = c

	c = DefaultConfig()
	c.Containers, c.Nodes, c.Graph, c.Seed = 30, 4, Star, 5
	c.WorkerSlots, c.AllPeers, c.Hosts, c.CPUsPerHost, c.LockCPUMs = 1, true, 2, 2, 1
	out["star-queue-30"] = c

	c = labLike(15)
	c.Rounds, c.Seed = 3, 8
	out["lab-like-15"] = c
	return out
}

// golden renders everything a run decided: each round's report with its exact
// figures, and a digest of the final state (every container's times and flags, every
// connection's counters and recordings, every role's persisted record, the decisions).
func golden(t *testing.T, name string, cfg Config) string {
	var b strings.Builder
	for _, alg := range realAlgorithms() {
		r, err := newRunner(cfg, alg, true)
		if err != nil {
			t.Fatal(err)
		}
		r.loop()
		fmt.Fprintf(&b, "== %s %s\n", name, alg.Name())
		for _, rep := range r.reports {
			fmt.Fprintln(&b, rep.BenchLine())
			fmt.Fprintf(&b, "  round=%d snapshot=%s reason=%q latency=%v downtime=%v dump=%v hold=%v dumped=%d reused=%d bytes=%v dropped=%d steperrs=%d end=%v\n",
				rep.Round, rep.Snapshot, rep.Reason, rep.LatencyMs, rep.Downtime, rep.DumpTime, rep.Hold,
				rep.Dumped, rep.Reused, rep.BytesDumped, rep.Dropped, rep.StepErrors, rep.EndMs)
			if rep.Verdict != nil {
				fmt.Fprintf(&b, "  cut: %s lines=%x\n", rep.Verdict.Summary(), sha256.Sum256([]byte(strings.Join(rep.Verdict.Lines(), "\n"))))
			}
			if rep.Rollback != nil {
				fmt.Fprintf(&b, "  rollback: %+v\n", *rep.Rollback)
			}
			for _, v := range rep.Violations {
				fmt.Fprintf(&b, "  violation: %s\n", v)
			}
		}
		h := sha256.New()
		for i := range r.w.cs {
			c := &r.w.cs[i]
			fmt.Fprintln(h, c.id, c.node, c.mem, c.edges, c.frozen, c.dumpFrozen, c.stopped, c.downSince, c.downtime,
				c.lockAll, c.dumping, c.dumpBegan, c.recorded, c.dumpedFresh, c.reusedFrom, c.committedSnap)
		}
		for i := range r.w.conns {
			e := &r.w.conns[i]
			fmt.Fprintln(h, e.u, e.v, e.lockU, e.lockV, e.last, e.held)
			for _, d := range e.d {
				fmt.Fprintln(h, d.rate, d.sent, d.recv, d.acked, d.recSent, d.recAcked, d.recRecv,
					d.comSent, d.comAcked, d.comRecv, d.curSentSet, d.curRecSet)
			}
		}
		for i := range r.procs {
			fmt.Fprintf(h, "%d %t %d %x\n", i, r.procs[i].alive, r.procs[i].gen, r.procs[i].record)
		}
		fmt.Fprintf(h, "%+v %d %d\n", r.decisions, r.w.now, r.tickN)
		fmt.Fprintf(&b, "  state=%x\n", h.Sum(nil))
	}
	return b.String()
}

// TestGolden: the simulator's outcomes for fixed seeds at small sizes are those in
// testdata/golden.txt, written by the simulator before its performance work (go test
// ./sim -run TestGolden -rewrite rewrites it; a change there is a change of what is
// simulated, not only of its cost).
func TestGolden(t *testing.T) {
	cfgs := goldenConfigs()
	names := make([]string, 0, len(cfgs))
	for n := range cfgs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(golden(t, n, cfgs[n]))
	}
	const path = "testdata/golden.txt"
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./sim -run TestGolden -rewrite writes it)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s line %d differs:\n got %s\nwant %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
	}
}

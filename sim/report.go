package sim

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/swarmckpt/swarmckpt/cut"
)

// Dist summarises a distribution in milliseconds.
type Dist struct {
	P50, P99, Max float64
}

func dist(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v) // no NaNs: the order sort.Float64s gives
	q := func(p float64) float64 {
		i := int(p*float64(len(v))+0.5) - 1
		i = max(0, min(i, len(v)-1))
		return v[i]
	}
	return Dist{P50: q(0.50), P99: q(0.99), Max: v[len(v)-1]}
}

// Rollback is the domino effect of a recovery line.
type Rollback struct {
	// Total is the number of checkpoints skipped over all containers, Max the most any
	// one container skipped, Containers how many containers rolled back at all, and
	// ToInitial how many fell back to their initial state (no usable checkpoint).
	Total, Max, Containers, ToInitial int
	// Err is set when the recovery line could not be computed.
	Err string
}

// Report describes one simulated snapshot (one round). All times are simulated.
type Report struct {
	Algorithm  string
	Graph      Graph
	Containers int
	Nodes      int
	Conns      int
	Seed       uint64
	Round      int
	Faults     string

	// Snapshot is the snapshot's id; Outcome is "committed", "aborted" or "undecided".
	Snapshot string
	Outcome  string
	Reason   string
	// LatencyMs: from the request to the commit (or abort) being durable.
	LatencyMs float64
	// Downtime: per container, time its compute was stopped (frozen, or frozen by CRIU
	// during its dump), over every container of the snapshot (0 for one that was not).
	Downtime Dist
	// DumpTime: per fresh dump, from the command reaching the container's role to the
	// dump's end (what a worker measures around runc).
	DumpTime Dist
	// Hold: per connection, time it was locked (no bytes crossing) during the round.
	Hold Dist
	// Messages: control messages sent between processes (coordinator <-> workers,
	// worker <-> worker) in the round; Dropped: lost to faults or sent to a dead process.
	Messages, Dropped int
	// Dumped and Reused count containers freshly dumped / reusing earlier images;
	// BytesDumped is the memory written.
	Dumped, Reused int
	BytesDumped    float64
	// Verdict is the cut checker's verdict on the recorded state (committed snapshots).
	Verdict *cut.Report
	// ConsistentCutPromised is the algorithm's guarantee (algorithms.Guarantees).
	ConsistentCutPromised bool
	// Rollback is set for an algorithm that picks a recovery line at restore
	// (uncoordinated): how far the domino effect rolls back from the latest checkpoints.
	Rollback *Rollback
	// StepErrors counts Step calls that returned an error (refused or unexpected).
	StepErrors int
	// Violations lists broken invariants: none may be present for a correct algorithm.
	Violations []string
	// EndMs is the simulated time at the end of the round, since the run started.
	EndMs float64
}

// Consistent is the checker's verdict as printed: "true", "false", or "n/a" for a
// snapshot that did not commit.
func (r *Report) Consistent() string {
	if r.Verdict == nil {
		return "n/a"
	}
	return fmt.Sprint(r.Verdict.Consistent())
}

// BenchLine is the machine-readable summary line.
func (r *Report) BenchLine() string {
	return fmt.Sprintf("BENCH sim algorithm=%s graph=%s containers=%d nodes=%d faults=%s outcome=%s latency_ms=%.1f downtime_p50_ms=%.1f downtime_p99_ms=%.1f downtime_max_ms=%.1f hold_p99_ms=%.1f messages=%d bytes_dumped=%.0f consistent=%s",
		r.Algorithm, r.Graph, r.Containers, r.Nodes, r.Faults, r.Outcome, r.LatencyMs,
		r.Downtime.P50, r.Downtime.P99, r.Downtime.Max, r.Hold.P99, r.Messages, r.BytesDumped, r.Consistent())
}

// Write prints a human summary.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "algorithm %s, graph %s: %d containers on %d nodes, %d connections, seed %d, faults %s\n",
		r.Algorithm, r.Graph, r.Containers, r.Nodes, r.Conns, r.Seed, r.Faults)
	fmt.Fprintf(w, "snapshot %s (round %d): %s", r.Snapshot, r.Round, r.Outcome)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  latency           %10.1f ms (simulated)\n", r.LatencyMs)
	fmt.Fprintf(w, "  compute downtime  p50 %8.1f  p99 %8.1f  max %8.1f ms per container\n", r.Downtime.P50, r.Downtime.P99, r.Downtime.Max)
	fmt.Fprintf(w, "  connection hold   p50 %8.1f  p99 %8.1f  max %8.1f ms per connection\n", r.Hold.P50, r.Hold.P99, r.Hold.Max)
	fmt.Fprintf(w, "  control messages  %d (%d dropped)\n", r.Messages, r.Dropped)
	fmt.Fprintf(w, "  dumped            %d containers, %.1f GiB; reused %d\n", r.Dumped, r.BytesDumped/(1<<30), r.Reused)
	if r.Verdict != nil {
		fmt.Fprintf(w, "  cut checker       %s\n", r.Verdict.Summary())
		for i, v := range r.Verdict.Violations {
			if i == 5 {
				fmt.Fprintf(w, "                    ... %d more\n", len(r.Verdict.Violations)-5)
				break
			}
			fmt.Fprintf(w, "                    %s\n", v.Line())
		}
	} else {
		fmt.Fprintln(w, "  cut checker       n/a (snapshot not committed)")
	}
	if !r.ConsistentCutPromised {
		fmt.Fprintln(w, "  note              this algorithm does not promise a consistent cut (a recovery line is chosen at restore)")
	}
	if rb := r.Rollback; rb != nil {
		if rb.Err != "" {
			fmt.Fprintf(w, "  recovery line     error: %s\n", rb.Err)
		} else {
			fmt.Fprintf(w, "  recovery line     %d container(s) roll back (%d to their initial state), %d checkpoint(s) in total, at most %d for one container\n",
				rb.Containers, rb.ToInitial, rb.Total, rb.Max)
		}
	}
	if len(r.Violations) == 0 {
		fmt.Fprintln(w, "  invariants        ok (one decision, nothing left locked or frozen)")
	} else {
		fmt.Fprintf(w, "  invariants        %d VIOLATED:\n", len(r.Violations))
		for _, v := range r.Violations {
			fmt.Fprintf(w, "                    %s\n", v)
		}
	}
	fmt.Fprintln(w, r.BenchLine())
}

// report closes the current round.
func (r *runner) report() Report {
	rep := Report{Algorithm: r.alg.Name(), Graph: r.cfg.Graph, Containers: r.cfg.Containers,
		Nodes: r.cfg.Nodes, Conns: len(r.w.conns), Seed: r.cfg.Seed, Round: r.round,
		Snapshot: r.snap, Outcome: "undecided", Messages: r.cur.messages, Dropped: r.cur.dropped,
		Dumped: r.cur.dumped, Reused: r.cur.reused, BytesDumped: r.cur.bytesDumped,
		ConsistentCutPromised: r.alg.Guarantees().ConsistentCut, StepErrors: r.stepErrs,
		EndMs: r.w.now.Millis()}
	rep.Faults = "none"
	if r.round == r.cfg.Rounds {
		rep.Faults = r.cfg.Faults.String()
	}
	for _, e := range r.recoverErrs {
		rep.Violations = append(rep.Violations, "coordinator could not recover from its own last record: "+e)
	}
	r.recoverErrs = nil
	var mine []decision
	for _, d := range r.decisions {
		if d.snap == r.snap {
			mine = append(mine, d)
		}
	}
	if len(mine) > 0 {
		rep.Outcome, rep.Reason = "aborted", mine[0].reason
		if mine[0].committed {
			rep.Outcome = "committed"
		}
		rep.LatencyMs = (r.decidedAt - r.roundAt).Millis() + r.cfg.ClientMs
		for _, d := range mine[1:] {
			if d.committed != mine[0].committed {
				rep.Violations = append(rep.Violations, fmt.Sprintf("snapshot %s decided both ways (commit and abort)", r.snap))
				break
			}
		}
	} else {
		rep.Violations = append(rep.Violations, fmt.Sprintf("snapshot %s never decided (no commit or abort by %.0f ms)", r.snap, r.w.now.Millis()))
	}
	down := make([]float64, len(r.w.cs))
	held := 0
	for i := range r.w.cs {
		c := &r.w.cs[i]
		d := c.downtime
		if c.down() {
			d += r.w.now - c.downSince
		}
		down[i] = d.Millis()
		if r.w.held(int32(i)) {
			held++
			if held <= 3 {
				rep.Violations = append(rep.Violations, fmt.Sprintf("container %s left held at the end (frozen=%v locked=%v)",
					c.id, c.down(), c.lockAll))
			}
		}
	}
	if held > 3 {
		rep.Violations = append(rep.Violations, fmt.Sprintf("... %d containers left held in total", held))
	}
	rep.Downtime = dist(down)
	rep.DumpTime = dist(r.cur.dumpMs)
	hold := make([]float64, len(r.w.conns))
	for i := range r.w.conns {
		r.w.advance(int32(i))
		hold[i] = r.w.conns[i].held.Millis()
	}
	rep.Hold = dist(hold)
	if rep.Outcome == "committed" {
		missing := 0
		for i := range r.w.cs {
			if !r.w.cs[i].recorded {
				missing++
			}
		}
		if missing > 0 {
			rep.Violations = append(rep.Violations, fmt.Sprintf("committed with %d container(s) never recorded", missing))
		}
		rep.Verdict = cut.Check(r.w.cutState())
		rep.Rollback = r.rollback()
		if rep.ConsistentCutPromised && !rep.Verdict.Consistent() {
			rep.Violations = append(rep.Violations, "committed snapshot is not a consistent cut: "+rep.Verdict.Err().Error())
		}
	}
	return rep
}

// String is the human summary.
func (r *Report) String() string {
	var b strings.Builder
	r.Write(&b)
	return b.String()
}

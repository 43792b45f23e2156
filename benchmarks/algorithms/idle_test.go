package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The idle summary counts only what a snapshot wrote (a reused set is not written),
// and minimal's BENCH line names the other algorithms' second snapshots with the ratio.
func TestIdleSummaryCountsWrittenBytesAndNamesTheRatio(t *testing.T) {
	const mib = 1 << 20
	snap := func(total float64, reuse bool, verdict string) Measurement {
		m := Measurement{TotalMS: total, Verdict: verdict}
		for _, c := range []string{"holder.1", "holder.2", "idle.1", "idle.2"} {
			r := ContainerRow{Container: c, Bytes: 2 * mib, DumpMS: 100}
			if strings.HasPrefix(c, "idle.") {
				r.Bytes, r.DumpMS = 64*mib, 400
				if reuse {
					r.Reused, r.DumpMS = true, 50
				}
			}
			m.Containers = append(m.Containers, r)
		}
		return m
	}
	ir := IdleResults{Pairs: []IdlePair{
		{Shape: "idle", Method: "minimal", First: snap(1000, false, "consistent"), Second: snap(500, true, "consistent")},
		{Shape: "idle", Method: "blocking", First: snap(1100, false, "consistent"), Second: snap(1000, false, "consistent")},
		{Shape: "idle", Method: "chandy-lamport", First: snap(900, false, "consistent"), Second: snap(800, false, "INCONSISTENT: x")},
	}}
	sums := SummarizeIdle(ir)
	if len(sums) != 3 {
		t.Fatalf("%d summaries, want 3: %+v", len(sums), sums)
	}
	var min IdleSummary
	for _, s := range sums {
		if s.Method == "minimal" {
			min = s
		}
	}
	if min.FirstMiB != 132 || min.SecondMiB != 4 || min.Reused != 2 || min.IdleDumpFirst != 400 || min.IdleDumpSecond != 50 {
		t.Fatalf("minimal: %+v, want 132 -> 4 MiB written, 2 reused, idle dump 400 -> 50 ms", min)
	}
	lines := strings.Join(IdleBenchLines(sums), "\n")
	for _, want := range []string{"algorithm=minimal", "saved_mib_vs_own_first=128.0", "vs_blocking_second_mib=33.0x", "vs_blocking_second_ms=2.00x",
		"algorithm=chandy-lamport reps=1", "second_cut_consistent=0/1"} {
		if !strings.Contains(lines, want) {
			t.Errorf("BENCH lines lack %q:\n%s", want, lines)
		}
	}
	if bad := IdleFailures(ir); len(bad) != 1 || !strings.Contains(bad[0], "chandy-lamport rep 0 snapshot 2") {
		t.Fatalf("IdleFailures = %q, want chandy-lamport's second cut", bad)
	}
	dir := t.TempDir()
	if err := IdleReport(&strings.Builder{}, ir, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"idle.json", "idle.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err == nil {
		t.Fatal("IdleReport wrote results.json")
	}
}

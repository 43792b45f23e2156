package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// IdlePair is one algorithm's two snapshots in a row of an idle shape: the second
// one is where minimal reuses the idle containers' images of the first.
type IdlePair struct {
	Shape  string      `json:"shape"`
	Rep    int         `json:"rep"`
	Order  int         `json:"order"`
	Method string      `json:"method"`
	First  Measurement `json:"first"`
	Second Measurement `json:"second"`
}

// IdleResults is idle.json: the idle shapes' runs, kept apart from results.json (whose
// summary, plots and simulator calibration they are not part of).
type IdleResults struct {
	Command string     `json:"command"`
	Host    string     `json:"host"`
	Started string     `json:"started"`
	Reps    int        `json:"reps"`
	Pairs   []IdlePair `json:"pairs"`
	Skipped []Skip     `json:"skipped,omitempty"`
}

// written is what m wrote: the bytes of its containers' sets that were not reused.
func written(m Measurement) int64 {
	var n int64
	for _, c := range m.Containers {
		if !c.Reused {
			n += c.Bytes
		}
	}
	return n
}

func reused(m Measurement) int {
	n := 0
	for _, c := range m.Containers {
		if c.Reused {
			n++
		}
	}
	return n
}

// idleDumpMS is the dump step of m's idle containers (service "idle"), each.
func idleDumpMS(m Measurement) []float64 {
	var out []float64
	for _, c := range m.Containers {
		if strings.HasPrefix(c.Container, "idle.") {
			out = append(out, c.DumpMS)
		}
	}
	return out
}

// runIdle deploys idle shape s and takes, reps times and for every algorithm (rotated
// per repetition), two snapshots settle apart; both are removed after the second
// (removing the first before would leave minimal nothing to reuse).
func runIdle(ctx context.Context, logf func(string, ...any), ir *IdleResults, b *Bench, s Shape, si, reps int, stamp string, settle time.Duration) error {
	stack, _, undeploy, err := deployShape(ctx, logf, b, s, si)
	defer undeploy()
	if err != nil {
		return err
	}
	for rep := range reps {
		for order, method := range Rotate(Algorithms, rep) {
			p := IdlePair{Shape: s.Name, Rep: rep, Order: order, Method: method}
			var ids []string
			for i, m := range []*Measurement{&p.First, &p.Second} {
				if err := ctx.Err(); err != nil {
					return err
				}
				time.Sleep(settle)
				id := fmt.Sprintf("%s-%s-%s-r%d-%d", stack, stamp, strings.ReplaceAll(method, "-", ""), rep, i+1)
				t0 := time.Now()
				*m = b.Snapshot(ctx, stack, method, id)
				ids = append(ids, id)
				m.Shape, m.N, m.Rep, m.Order, m.Started = s.Name, s.N, rep, order, t0.UTC().Format(time.RFC3339Nano)
				b.FillReleased(m)
				logf("%s rep %d %-15s snapshot %d: total %6.0f ms  written %6.1f MiB  reused %d/%d  %s%s", s.Name, rep, method, i+1,
					m.TotalMS, float64(written(*m))/(1<<20), reused(*m), len(m.Containers), m.Verdict, errSuffix(m.Error))
			}
			for _, id := range slices.Backward(ids) {
				b.Remove(ctx, id)
			}
			ir.Pairs = append(ir.Pairs, p)
		}
	}
	return nil
}

// IdleSummary is one (idle shape, algorithm) over its repetitions.
type IdleSummary struct {
	Shape, Method                 string
	N, Idle, Reps                 int
	FirstMS, SecondMS             float64 // snapshot time p50
	FirstMiB, SecondMiB           float64 // written p50
	Reused                        float64 // containers reused in the second snapshot, p50
	IdleDumpFirst, IdleDumpSecond float64 // the idle containers' dump step p50
	Consistent, Runs              int     // second snapshots with a consistent cut
}

// SummarizeIdle summarises the pairs per shape and algorithm.
func SummarizeIdle(ir IdleResults) []IdleSummary {
	var out []IdleSummary
	for _, sh := range Shapes {
		for _, method := range Algorithms {
			var first, second, fmib, smib, reu, df, ds []float64
			s := IdleSummary{Shape: sh.Name, Method: method, N: sh.N, Idle: sh.Idle}
			for _, p := range ir.Pairs {
				if p.Shape != sh.Name || p.Method != method || p.First.Error != "" || p.Second.Error != "" {
					continue
				}
				s.Reps++
				first, second = append(first, p.First.TotalMS), append(second, p.Second.TotalMS)
				fmib, smib = append(fmib, float64(written(p.First))/(1<<20)), append(smib, float64(written(p.Second))/(1<<20))
				reu = append(reu, float64(reused(p.Second)))
				df, ds = append(df, idleDumpMS(p.First)...), append(ds, idleDumpMS(p.Second)...)
				s.Runs++
				if p.Second.Verdict == "consistent" {
					s.Consistent++
				}
			}
			if s.Reps == 0 {
				continue
			}
			s.FirstMS, s.SecondMS, s.FirstMiB, s.SecondMiB = Median(first), Median(second), Median(fmib), Median(smib)
			s.Reused, s.IdleDumpFirst, s.IdleDumpSecond = Median(reu), Median(df), Median(ds)
			out = append(out, s)
		}
	}
	return out
}

// IdleBenchLines renders one BENCH line per summary; minimal's names the other
// algorithms' second snapshots and the ratios (theirs / minimal's).
func IdleBenchLines(sums []IdleSummary) []string {
	var out []string
	for _, s := range sums {
		l := fmt.Sprintf("BENCH idle shape=%s containers=%d idle=%d algorithm=%s reps=%d first_total_ms_p50=%.0f second_total_ms_p50=%.0f first_written_mib_p50=%.1f second_written_mib_p50=%.1f second_reused_p50=%.0f idle_dump_ms_p50_first=%.0f idle_dump_ms_p50_second=%.0f second_cut_consistent=%d/%d",
			s.Shape, s.N, s.Idle, s.Method, s.Reps, s.FirstMS, s.SecondMS, s.FirstMiB, s.SecondMiB, s.Reused, s.IdleDumpFirst, s.IdleDumpSecond, s.Consistent, s.Runs)
		if s.Method == "minimal" {
			l += fmt.Sprintf(" saved_mib_vs_own_first=%.1f saved_ms_vs_own_first=%.0f", s.FirstMiB-s.SecondMiB, s.FirstMS-s.SecondMS)
			for _, o := range sums {
				if o.Shape != s.Shape || o.Method == s.Method {
					continue
				}
				l += fmt.Sprintf(" vs_%s_second_mib=%.1fx vs_%s_second_ms=%.2fx", o.Method, o.SecondMiB/s.SecondMiB, o.Method, o.SecondMS/s.SecondMS)
			}
		}
		out = append(out, l)
	}
	return out
}

// IdleTable is idle.md's table.
func IdleTable(sums []IdleSummary) string {
	var b strings.Builder
	b.WriteString("| shape | algorithm | reps | snapshot ms p50: 1st / 2nd | written MiB p50: 1st / 2nd | reused in 2nd (p50) | idle containers' dump step ms p50: 1st / 2nd | 2nd cut |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range sums {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f / %.0f | %.1f / %.1f | %.0f of %d | %.0f / %.0f | %d/%d consistent |\n",
			s.Shape, s.Method, s.Reps, s.FirstMS, s.SecondMS, s.FirstMiB, s.SecondMiB, s.Reused, s.N, s.IdleDumpFirst, s.IdleDumpSecond, s.Consistent, s.Runs)
	}
	return b.String()
}

// IdleReport writes idle.json and idle.md into dir and prints the BENCH lines.
func IdleReport(w io.Writer, ir IdleResults, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ir, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "idle.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	sums := SummarizeIdle(ir)
	for _, l := range IdleBenchLines(sums) {
		fmt.Fprintln(w, l)
	}
	for _, s := range ir.Skipped {
		fmt.Fprintf(w, "BENCH skipped method=%s shape=%s why=%q\n", s.Method, cmpOr(s.Shape, "all"), s.Why)
	}
	return os.WriteFile(filepath.Join(dir, "idle.md"), []byte(IdleTable(sums)), 0o644)
}

// IdleFailures lists the idle pairs' failed snapshots and the coordinated algorithms'
// inconsistent cuts (as Failures does for the other shapes).
func IdleFailures(ir IdleResults) []string {
	var bad []string
	for _, p := range ir.Pairs {
		for i, m := range []Measurement{p.First, p.Second} {
			if m.Error != "" {
				bad = append(bad, fmt.Sprintf("%s %s rep %d snapshot %d: %s", p.Shape, p.Method, p.Rep, i+1, m.Error))
			} else if p.Method != "uncoordinated" && m.Verdict != "consistent" {
				bad = append(bad, fmt.Sprintf("%s %s rep %d snapshot %d: cut %s", p.Shape, p.Method, p.Rep, i+1, m.Verdict))
			}
		}
	}
	return bad
}

package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Save writes results.json and results.csv (one row per container per measurement).
func Save(r Results, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "results.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"shape", "containers", "rep", "order", "method", "snapshot_id", "started", "total_ms", "snapshot_bytes", "verdict", "error",
		"container", "node", "big", "frozen_ms", "locked_ms", "dump_ms", "commit_ms", "bytes",
		"app_events", "app_latency_p50_ms", "app_latency_p99_ms", "app_latency_max_ms", "app_stall_ms"})
	f64 := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, m := range r.Measurements {
		for _, c := range m.Containers {
			row := []string{m.Shape, strconv.Itoa(m.N), strconv.Itoa(m.Rep), strconv.Itoa(m.Order), m.Method, m.ID, m.Started,
				f64(m.TotalMS), strconv.FormatInt(m.Bytes, 10), m.Verdict, m.Error,
				c.Container, c.Node, strconv.FormatBool(c.Big), f64(c.FrozenMS), f64(c.LockedMS), f64(c.DumpMS), f64(c.CommitMS), strconv.FormatInt(c.Bytes, 10)}
			if a := c.App; a != nil {
				row = append(row, strconv.Itoa(a.Events), f64(a.P50MS), f64(a.P99MS), f64(a.MaxMS), f64(a.StallMS))
			} else {
				row = append(row, "", "", "", "", "")
			}
			_ = w.Write(row)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Summary is one (shape, method) over all repetitions.
type Summary struct {
	Shape, Method        string
	N, Reps, Errors      int
	Consistent, Checked  int
	TotalP50             float64
	FrozenP50, FrozenMax float64
	SmallFrozenP50       float64 // mixed: the small containers
	BigDump, BigFrozen   float64 // mixed: the memhog (median)
	LockedP50, DumpP50   float64
	StallP50, StallMax   float64
	LatP99Max            float64
	BytesP50             float64
	// SmallOverDumpMax: the largest frozen - dump of a small container (mixed: the
	// target is <= 20 ms for chandy-lamport, whatever the big one does).
	SmallOverDumpMax float64
	// DumpMax: the slowest container's dump (median over the repetitions).
	DumpMax float64
}

// Summarize groups the measurements by shape and method (in first-seen order).
func Summarize(r Results) []Summary {
	type key struct{ shape, method string }
	var order []key
	groups := map[key][]Measurement{}
	for _, m := range r.Measurements {
		k := key{m.Shape, m.Method}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	var out []Summary
	for _, k := range order {
		ms := groups[k]
		s := Summary{Shape: k.shape, Method: k.method, N: ms[0].N, Reps: len(ms)}
		var total, bytes, frozen, small, bigDump, bigFrozen, locked, dump, stall, lat, over, dumpMax []float64
		for _, m := range ms {
			if m.Error != "" {
				s.Errors++
			}
			if !strings.HasPrefix(m.Verdict, "n/a") {
				s.Checked++
				if m.Verdict == "consistent" {
					s.Consistent++
				}
			}
			total = append(total, m.TotalMS)
			bytes = append(bytes, float64(m.Bytes))
			slowest := 0.0
			for _, c := range m.Containers {
				slowest = max(slowest, c.DumpMS)
				frozen = append(frozen, c.FrozenMS)
				locked = append(locked, c.LockedMS)
				dump = append(dump, c.DumpMS)
				if c.Big {
					bigDump = append(bigDump, c.DumpMS)
					bigFrozen = append(bigFrozen, c.FrozenMS)
				} else {
					small = append(small, c.FrozenMS)
					over = append(over, c.FrozenMS-c.DumpMS)
				}
				if c.App != nil {
					stall = append(stall, c.App.StallMS)
					lat = append(lat, c.App.P99MS)
				}
			}
			dumpMax = append(dumpMax, slowest)
		}
		s.TotalP50, s.BytesP50 = Median(total), Median(bytes)
		s.FrozenP50, s.FrozenMax = Median(frozen), Pct(frozen, 1)
		s.SmallFrozenP50, s.BigDump, s.BigFrozen = Median(small), Median(bigDump), Median(bigFrozen)
		s.LockedP50, s.DumpP50 = Median(locked), Median(dump)
		s.StallP50, s.StallMax, s.LatP99Max = Median(stall), Pct(stall, 1), Pct(lat, 1)
		s.SmallOverDumpMax, s.DumpMax = Pct(over, 1), Median(dumpMax)
		out = append(out, s)
	}
	return out
}

// BenchLines renders one BENCH line per summary, with the ratios to the baselines of
// the same shape: vs_docker_sequential = docker script's time / this time (how many
// times faster), vs_runc_parallel = this time / raw runc's (how far above the floor).
func BenchLines(sums []Summary) []string {
	base := func(shape, method string) float64 {
		for _, s := range sums {
			if s.Shape == shape && s.Method == method {
				return s.TotalP50
			}
		}
		return math.NaN()
	}
	var out []string
	for _, s := range sums {
		var b strings.Builder
		fmt.Fprintf(&b, "BENCH stack shape=%s containers=%d algorithm=%s reps=%d total_ms_p50=%s frozen_ms_p50=%s frozen_ms_max=%s locked_ms_p50=%s dump_ms_p50=%s",
			s.Shape, s.N, s.Method, s.Reps, f0(s.TotalP50), f0(s.FrozenP50), f0(s.FrozenMax), f0(s.LockedP50), f0(s.DumpP50))
		if !math.IsNaN(s.BigDump) {
			fmt.Fprintf(&b, " small_frozen_ms_p50=%s small_frozen_minus_dump_ms_max=%s big_frozen_ms=%s big_dump_ms=%s", f0(s.SmallFrozenP50), f0(s.SmallOverDumpMax), f0(s.BigFrozen), f0(s.BigDump))
		}
		fmt.Fprintf(&b, " slowest_dump_ms=%s", f0(s.DumpMax))
		fmt.Fprintf(&b, " app_stall_ms_p50=%s app_stall_ms_max=%s app_latency_p99_ms_max=%s mib_p50=%.1f",
			f0(s.StallP50), f0(s.StallMax), f0(s.LatP99Max), s.BytesP50/(1<<20))
		if s.Checked > 0 {
			fmt.Fprintf(&b, " cut_consistent=%d/%d", s.Consistent, s.Checked)
		}
		if d := base(s.Shape, MethodDockerSeq); s.Method != MethodDockerSeq && !math.IsNaN(d) && s.TotalP50 > 0 {
			fmt.Fprintf(&b, " vs_docker_sequential=%.1fx", d/s.TotalP50)
		}
		if rc := base(s.Shape, MethodRuncPar); s.Method != MethodRuncPar && !math.IsNaN(rc) && rc > 0 {
			fmt.Fprintf(&b, " vs_runc_parallel=%.2fx", s.TotalP50/rc)
		}
		if rd := slowestRunc(sums, s.Shape); slices.Contains(Algorithms, s.Method) && rd > 0 {
			// The target: <= 1.25 x (slowest raw runc dump) + 100 ms.
			fmt.Fprintf(&b, " vs_slowest_runc_dump_plus_100ms=%.2fx", s.TotalP50/(1.25*rd+100))
		}
		if s.Errors > 0 {
			fmt.Fprintf(&b, " errors=%d", s.Errors)
		}
		out = append(out, b.String())
	}
	return out
}

// slowestRunc is the runc baseline's slowest container dump on shape (0: none).
func slowestRunc(sums []Summary, shape string) float64 {
	for _, s := range sums {
		if s.Shape == shape && s.Method == MethodRuncPar && !math.IsNaN(s.DumpMax) {
			return s.DumpMax
		}
	}
	return 0
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// Report saves the raw results, prints the BENCH lines and the skipped baselines, and
// draws the plots into dir.
func Report(w io.Writer, r Results, dir string) error {
	if err := Save(r, dir); err != nil {
		return err
	}
	sums := Summarize(r)
	for _, l := range BenchLines(sums) {
		fmt.Fprintln(w, l)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "BENCH skipped method=%s shape=%s why=%q\n", s.Method, cmpOr(s.Shape, "all"), s.Why)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(Table(sums)), 0o644); err != nil {
		return err
	}
	if r.Sim != nil {
		b, err := json.MarshalIndent(r.Sim.Calibration, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "calibration.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "sim-check.md"), []byte(CheckTable(r.Sim)), 0o644); err != nil {
			return err
		}
		for _, c := range r.Sim.Checks {
			fmt.Fprintf(w, "BENCH simcheck shape=%s algorithm=%s lab_snapshot_ms_p50=%.0f sim_snapshot_ms_p50=%.0f sim_vs_lab_snapshot=%.2fx lab_frozen_ms_p50=%.0f sim_frozen_ms_p50=%.0f sim_vs_lab_frozen=%.2fx lab_inconsistent=%d/%d sim_inconsistent=%d/%d\n",
				c.Shape, c.Algorithm, c.LabTotal, c.SimTotal, c.SimTotal/c.LabTotal, c.LabFrozen, c.SimFrozen, c.SimFrozen/c.LabFrozen,
				c.LabInconsistent, c.LabRuns, c.Inconsistent, c.Runs)
		}
	}
	files, err := Plots(r, sums, dir)
	if err != nil {
		return err
	}
	slices.Sort(files)
	fmt.Fprintf(w, "# plots: %s\n# raw: %s %s\n", strings.Join(files, " "), filepath.Join(dir, "results.csv"), filepath.Join(dir, "results.json"))
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Table renders the summaries as a markdown table (summary.md, pasted into RESULTS.md).
func Table(sums []Summary) string {
	var b strings.Builder
	b.WriteString("| shape | method | reps | snapshot ms (p50) | frozen ms p50 / max | locked ms p50 | dump ms p50 | app stall ms p50 / max | app latency p99 ms (max) | MiB | cut | vs docker seq | / runc par |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	base := map[[2]string]float64{}
	for _, s := range sums {
		base[[2]string{s.Shape, s.Method}] = s.TotalP50
	}
	for _, s := range sums {
		cut := "n/a"
		if s.Checked > 0 {
			cut = fmt.Sprintf("%d/%d consistent", s.Consistent, s.Checked)
		}
		vsD, vsR := "", ""
		if d, ok := base[[2]string{s.Shape, MethodDockerSeq}]; ok && s.Method != MethodDockerSeq && s.TotalP50 > 0 {
			vsD = fmt.Sprintf("%.1fx", d/s.TotalP50)
		}
		if rc, ok := base[[2]string{s.Shape, MethodRuncPar}]; ok && s.Method != MethodRuncPar && rc > 0 {
			vsR = fmt.Sprintf("%.2f", s.TotalP50/rc)
		}
		if s.Errors > 0 {
			cut += fmt.Sprintf(", %d errors", s.Errors)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s / %s | %s | %s | %s / %s | %s | %.1f | %s | %s | %s |\n",
			s.Shape, s.Method, s.Reps, f0(s.TotalP50), f0(s.FrozenP50), f0(s.FrozenMax), f0(s.LockedP50), f0(s.DumpP50),
			f0(s.StallP50), f0(s.StallMax), f0(s.LatP99Max), s.BytesP50/(1<<20), cut, vsD, vsR)
	}
	return b.String()
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestRotateInterleavesMethods(t *testing.T) {
	m := []string{"a", "b", "c"}
	for rep, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := Rotate(m, rep); !slices.Equal(got, want) {
			t.Fatalf("Rotate rep %d = %v, want %v", rep, got, want)
		}
	}
	if !slices.Equal(m, []string{"a", "b", "c"}) {
		t.Fatalf("Rotate changed its input: %v", m)
	}
}

func TestPickShapes(t *testing.T) {
	q, err := PickShapes("", true)
	if err != nil || len(q) != 2 || q[0].Name != "bank-5" || q[1].Name != "scale-3" {
		t.Fatalf("quick shapes = %v, %v; want bank-5, scale-3", q, err)
	}
	if _, err := PickShapes("bank-5,nope", false); err == nil || !strings.Contains(err.Error(), "unknown shape \"nope\"") {
		t.Fatalf("unknown shape: err = %v", err)
	}
}

func TestComposeIsValidAndSized(t *testing.T) {
	for _, s := range Shapes {
		var f struct {
			Services map[string]struct {
				Image  string   `json:"image"`
				Cmd    []string `json:"command"`
				Deploy struct {
					Replicas int               `json:"replicas"`
					Labels   map[string]string `json:"labels"`
				} `json:"deploy"`
			} `json:"services"`
		}
		if err := yaml.Unmarshal([]byte(Compose(s, 60)), &f); err != nil {
			t.Fatalf("%s: compose is not YAML: %v\n%s", s.Name, err, Compose(s, 60))
		}
		n := 0
		for name, svc := range f.Services {
			n += svc.Deploy.Replicas
			if svc.Deploy.Labels["swarmckpt.enable"] != "true" {
				t.Fatalf("%s: service %s is not swarmckpt.enable", s.Name, name)
			}
		}
		if n != s.N {
			t.Fatalf("%s: %d containers in the compose file, want %d", s.Name, n, s.N)
		}
		if h, ok := f.Services["holder"]; ok && !slices.Contains(h.Cmd, "--count") {
			t.Fatalf("%s: holder without --count: %v", s.Name, h.Cmd)
		}
	}
}

func TestParseLogfmtAndReadReleased(t *testing.T) {
	line := `time=2026-12-06T03:00:00.000Z level=INFO msg="container released" node=n1 what=lock container=abc123 snapshot=s-1 held_ms=42 peers=0`
	kv := ParseLogfmt(line)
	if kv["msg"] != "container released" || kv["what"] != "lock" || kv["held_ms"] != "42" || kv["snapshot"] != "s-1" {
		t.Fatalf("ParseLogfmt = %v", kv)
	}
	dir := t.TempDir()
	log := strings.Join([]string{
		line,
		`time=x level=INFO msg="container released" what=lock container=abc123 snapshot=s-1 held_ms=50 peers=2`,
		`time=x level=INFO msg="container released" what=freeze container=abc123 snapshot=s-1 held_ms=7 peers=0`,
		`time=x level=INFO msg="container released" what=freeze container=abc123 snapshot=s-10 held_ms=999 peers=0`,
		`time=x level=INFO msg="other" what=freeze container=abc123 snapshot=s-1 held_ms=999`,
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "agent-n1.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ReadReleased(dir, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.LockedMS["abc123"] != 50 || r.FrozenMS["abc123"] != 7 {
		t.Fatalf("released = %+v, want locked 50 (the longest) and frozen 7 (not s-10's)", r)
	}
	if v, ok := lookupID(r.LockedMS, "abc123def456"); !ok || v != 50 {
		t.Fatalf("lookupID by full ID = %v %v", v, ok)
	}
	if _, err := ReadReleased(t.TempDir(), "s-1"); err == nil {
		t.Fatal("ReadReleased without agent logs did not fail")
	}
}

func TestSummaryAndBenchLinesNameTheBaselineRatio(t *testing.T) {
	meas := func(method string, total float64, frozen ...float64) Measurement {
		m := Measurement{Shape: "mixed", N: len(frozen), Method: method, TotalMS: total, Verdict: "consistent"}
		if strings.Contains(method, "-") && method != "chandy-lamport" {
			m.Verdict = "n/a (no cut)"
		}
		for i, f := range frozen {
			m.Containers = append(m.Containers, ContainerRow{FrozenMS: f, DumpMS: f, Big: i == 0, App: &AppStats{StallMS: f + 1}})
		}
		return m
	}
	r := Results{Measurements: []Measurement{
		meas("chandy-lamport", 1000, 900, 10, 20),
		meas("chandy-lamport", 1200, 950, 12, 22),
		meas(MethodDockerSeq, 30000, 22000, 400, 400),
		meas(MethodRuncPar, 800, 780, 8, 9),
	}}
	sums := Summarize(r)
	if len(sums) != 3 || sums[0].Reps != 2 || sums[0].Consistent != 2 || sums[0].Checked != 2 {
		t.Fatalf("summaries = %+v", sums)
	}
	if sums[0].BigDump != 900 || sums[0].SmallFrozenP50 != 12 {
		t.Fatalf("chandy-lamport big dump %v small frozen p50 %v, want 900 and 12", sums[0].BigDump, sums[0].SmallFrozenP50)
	}
	lines := BenchLines(sums)
	want := "vs_docker_sequential=30.0x" // 30000 / median(1000,1200)=1000
	if !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "vs_runc_parallel=1.25x") || !strings.Contains(lines[0], "cut_consistent=2/2") {
		t.Fatalf("BENCH line %q lacks %s, vs_runc_parallel=1.25x or cut_consistent=2/2", lines[0], want)
	}
	if strings.Contains(lines[1], "vs_docker_sequential") || strings.Contains(lines[1], "cut_consistent") {
		t.Fatalf("the docker baseline's own line compares it with itself or claims a cut: %q", lines[1])
	}
	if !math.IsNaN(Median(nil)) {
		t.Fatal("Median of nothing is not NaN")
	}
}

func TestReportWritesRawDataAndPlots(t *testing.T) {
	dir := t.TempDir()
	r := Results{Reps: 1}
	for _, shape := range []struct {
		name string
		n    int
	}{{"scale-3", 3}, {"scale-10", 10}} {
		for i, meth := range []string{"blocking", "chandy-lamport", MethodDockerSeq} {
			m := Measurement{Shape: shape.name, N: shape.n, Method: meth, TotalMS: float64(100 * (i + 1) * shape.n), Bytes: int64(shape.n) << 20, Verdict: "consistent"}
			for j := range shape.n {
				m.Containers = append(m.Containers, ContainerRow{Container: "client." + string(rune('1'+j)), FrozenMS: float64(10 * (j + 1)), App: &AppStats{StallMS: 30}})
			}
			r.Measurements = append(r.Measurements, m)
		}
	}
	var out strings.Builder
	if err := Report(&out, r, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "results.csv", "frozen-scale-3.svg", "stall-scale-10.png", "scale.svg", "bytes.png"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Size() == 0 {
			t.Fatalf("%s not written (%v)", f, err)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "results.csv"))
	if got := strings.Count(string(csv), "\n"); got != 1+3*3+3*10 {
		t.Fatalf("results.csv has %d lines, want a header and one per container per measurement (40)", got)
	}
	if !strings.Contains(out.String(), "BENCH stack shape=scale-10 containers=10 algorithm=chandy-lamport") {
		t.Fatalf("report output lacks the BENCH line:\n%s", out.String())
	}
}

func TestFailuresFlagsAlgorithmsNotBaselines(t *testing.T) {
	r := Results{Measurements: []Measurement{
		{Shape: "bank-5", Method: "blocking", Verdict: "consistent"},
		{Shape: "bank-5", Method: "chandy-lamport", Verdict: "INCONSISTENT: money created"},
		{Shape: "bank-5", Method: "uncoordinated", Verdict: "INCONSISTENT: orphan"},
		{Shape: "bank-5", Method: "minimal", Verdict: "consistent", Error: "window: holder.1: exit 1"},
		{Shape: "bank-5", Method: MethodDockerSeq, Verdict: "n/a (no cut)", Error: "docker checkpoint failed"},
	}}
	bad := Failures(r)
	if len(bad) != 2 || !strings.Contains(bad[0], "chandy-lamport") || !strings.Contains(bad[1], "minimal") {
		t.Fatalf("Failures = %q, want chandy-lamport's cut and minimal's error only", bad)
	}
}

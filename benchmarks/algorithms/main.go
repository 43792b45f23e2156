package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

func main() {
	bin := flag.String("swarmckpt", "bin/swarmckpt", "swarmckpt binary (the CLI that takes the snapshots)")
	labName := flag.String("lab", "benchalgo", "name of the lab (up, with its daemons: swarmckpt lab up --name NAME)")
	images := flag.String("images", "build/workloads", "directory of the workload image tars")
	reps := flag.Int("reps", 3, "repetitions of every method on every shape (methods rotated within each)")
	shapes := flag.String("shapes", "", "comma-separated shapes (default: all; with --quick: the small ones); idle alone writes only idle.json and idle.md")
	quick := flag.Bool("quick", false, "quick mode: one repetition of the small shapes (bank-5, scale-3)")
	out := flag.String("out", "benchmarks/algorithms", "directory for results.json, results.csv and the plots")
	replot := flag.String("replot", "", "only redo the summary, CSV, plots and the simulator's calibration and comparison from this results.json (no lab; the NATS latency measured with the run is reused)")
	withPodman := flag.Bool("podman", true, "also measure the Podman baseline")
	strict := flag.Bool("strict", false, "exit 1 if a swarmckpt algorithm's snapshot failed or a coordinated algorithm's cut is not consistent (CI)")
	withSim := flag.Bool("sim", true, "also calibrate the simulator from the run (writes calibration.json; NATS latency measured on an embedded server), compare it with every shape (sim-check.md) and draw its curves up to 10,000 containers with the lab's points")
	settle := flag.Duration("settle", 2*time.Second, "pause between two measurements (traffic back to normal)")
	flag.Parse()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *replot != "" {
		b, err := os.ReadFile(*replot)
		if err != nil {
			logf("%v", err)
			os.Exit(1)
		}
		r, nl, err := loadResults(b)
		if err != nil {
			logf("%s: %v", *replot, err)
			os.Exit(1)
		}
		if *withSim {
			addSim(ctx, logf, &r, nl, SimSizes)
		}
		if err := Report(os.Stdout, r, *out); err != nil {
			logf("%v", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		*reps = 1
	}
	if *reps < 1 {
		logf("--reps must be at least 1")
		os.Exit(2)
	}
	picked, err := PickShapes(*shapes, *quick)
	if err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	r := Results{Command: strings.Join(os.Args, " "), Started: time.Now().UTC().Format(time.RFC3339), Reps: *reps, Host: host()}
	ir := IdleResults{Command: r.Command, Started: r.Started, Reps: r.Reps, Host: r.Host}
	if err := run(ctx, logf, &r, &ir, *bin, *labName, *images, *out, picked, *reps, *withPodman, *settle); err != nil {
		logf("FAILED: %v", err)
		_ = saveAll(r, ir, *out)
		os.Exit(1)
	}
	if slices.ContainsFunc(picked, func(s Shape) bool { return s.Kind == "idle" }) {
		if err := IdleReport(os.Stdout, ir, *out); err != nil {
			logf("%v", err)
			os.Exit(1)
		}
	}
	if bad := IdleFailures(ir); *strict && len(bad) > 0 {
		logf("FAILED (--strict): %s", strings.Join(bad, "; "))
		os.Exit(1)
	}
	if !slices.ContainsFunc(picked, func(s Shape) bool { return s.Kind != "idle" }) {
		if len(r.Failed) > 0 {
			logf("FAILED: shapes %s (see the skipped lines)", strings.Join(r.Failed, ", "))
			os.Exit(1)
		}
		return // the idle shapes alone: results.json, the plots and the simulator stay
	}
	if *withSim {
		sizes := SimSizes
		if *quick { // CI: the curves up to 100 containers only (10,000 takes a minute)
			sizes = slices.DeleteFunc(slices.Clone(sizes), func(n int) bool { return n > 100 })
		}
		addSim(ctx, logf, &r, NATSLatency{}, sizes)
	}
	if err := Report(os.Stdout, r, *out); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	if len(r.Failed) > 0 {
		logf("FAILED: shapes %s (see the skipped lines)", strings.Join(r.Failed, ", "))
		os.Exit(1)
	}
	if bad := Failures(r); *strict && len(bad) > 0 {
		logf("FAILED (--strict): %s", strings.Join(bad, "; "))
		os.Exit(1)
	}
}

// loadResults reads a results.json. Its "sim" part is dropped: --replot recomputes it
// (and results.json files older than the calibrated simulator hold a list there); the
// NATS latency measured with the run (sim.nats, if any) is returned, so that a replot
// calibrates from the same numbers and gives the same comparison.
func loadResults(b []byte) (Results, NATSLatency, error) {
	var r Results
	var nl NATSLatency
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return r, nl, err
	}
	var old struct {
		NATS NATSLatency `json:"nats"`
	}
	if json.Unmarshal(raw["sim"], &old) == nil {
		nl = old.NATS
	}
	delete(raw, "sim")
	b, err := json.Marshal(raw)
	if err != nil {
		return r, nl, err
	}
	err = json.Unmarshal(b, &r)
	return r, nl, err
}

// Failures lists the algorithm measurements that failed, and the coordinated
// algorithms' snapshots whose cut was not found consistent (uncoordinated promises no
// consistent cut; baselines have none).
func Failures(r Results) []string {
	var bad []string
	for _, m := range r.Measurements {
		if !slices.Contains(Algorithms, m.Method) {
			continue
		}
		if m.Error != "" {
			bad = append(bad, fmt.Sprintf("%s %s rep %d: %s", m.Shape, m.Method, m.Rep, m.Error))
		} else if m.Method != "uncoordinated" && m.Verdict != "consistent" {
			bad = append(bad, fmt.Sprintf("%s %s rep %d: cut %s", m.Shape, m.Method, m.Rep, m.Verdict))
		}
	}
	return bad
}

// addSim measures the control plane's latency (embedded NATS) unless nl holds one
// measured already (a replot: the run's), calibrates the
// simulator from r and runs it (a failure is logged and recorded, not fatal: the lab's
// measurements stand on their own).
func addSim(ctx context.Context, logf func(string, ...any), r *Results, nl NATSLatency, sizes []int) {
	if nl.Samples == 0 {
		var err error
		if nl, err = MeasureNATS(ctx, 2000); err != nil {
			logf("NATS LATENCY NOT MEASURED: %v (the simulator keeps its default control-plane delays)", err)
		}
	}
	sim, err := RunSim(ctx, *r, nl, sizes)
	if err != nil {
		logf("SIMULATOR FAILED: %v", err)
		r.Skipped = append(r.Skipped, Skip{Method: "simulator", Why: err.Error()})
		return
	}
	r.Sim = sim
}

func host() string {
	k, _ := exec.Command("uname", "-r").Output()
	c, _ := exec.Command("criu", "--version").Output()
	v := ""
	for _, l := range strings.Split(string(c), "\n") {
		if strings.HasPrefix(l, "Version:") {
			v = strings.TrimSpace(strings.TrimPrefix(l, "Version:"))
		}
	}
	n, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("kernel %s, criu %s, %s cores", strings.TrimSpace(string(k)), v, strings.TrimSpace(string(n)))
}

func run(ctx context.Context, logf func(string, ...any), r *Results, ir *IdleResults, bin, labName, images, out string, shapes []Shape, reps int, withPodman bool, settle time.Duration) error {
	p, err := lab.Load(lab.DefaultConfig().RunDir, labName)
	if err != nil {
		return err
	}
	if p.Daemons == nil {
		return fmt.Errorf("lab %s runs without swarmckpt's daemons: bring it up with 'swarmckpt lab up --name %s' (daemons are on by default)", labName, labName)
	}
	scratch, err := os.MkdirTemp("/var/tmp", "bench-algorithms-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	b := &Bench{Bin: bin, Plan: p, Images: images, Scratch: scratch, Log: logf}
	pm := &Podman{Images: images, Scratch: scratch, PortBase: 31000, HTTPBase: 32000, Log: logf}
	podmanWhy := ""
	if !slices.ContainsFunc(shapes, func(s Shape) bool { return s.Kind != "idle" }) {
		withPodman = false // the idle shapes measure the algorithms only
	}
	if withPodman {
		if podmanWhy = pm.Available(); podmanWhy == "" {
			if err := pm.Load(ctx); err != nil {
				podmanWhy = "cannot load the workload images into podman: " + err.Error()
			}
		}
	} else {
		podmanWhy = "disabled with --podman=false"
	}
	if podmanWhy != "" {
		logf("BASELINE SKIPPED: %s: %s", MethodPodman, podmanWhy)
		r.Skipped = append(r.Skipped, Skip{Method: MethodPodman, Why: podmanWhy})
	}
	r.Skipped = append(r.Skipped, Skip{Method: "dmtcp", Why: "DMTCP is not packaged for Debian 12 here; docs/algorithms.md compares with its published numbers instead"})
	logf("DMTCP: not packaged here, not measured (docs/algorithms.md cites its published numbers)")
	stamp := time.Now().UTC().Format("150405")
	var podmanFor *Podman
	if podmanWhy == "" {
		podmanFor = pm
	}
	for si, s := range shapes {
		var err error
		if s.Kind == "idle" {
			err = runIdle(ctx, logf, ir, b, s, si, reps, stamp, settle)
		} else {
			err = runShape(ctx, logf, r, b, podmanFor, s, si, reps, stamp, settle)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("shape %s: %w", s.Name, err)
			}
			// Recorded, and the run goes on with the next shape.
			logf("SHAPE FAILED: %s: %v", s.Name, err)
			skip := Skip{Shape: s.Name, Method: "all", Why: "shape failed: " + err.Error()}
			if s.Kind == "idle" {
				ir.Skipped = append(ir.Skipped, skip)
			} else {
				r.Skipped = append(r.Skipped, skip)
			}
			r.Failed = append(r.Failed, s.Name)
		}
		if err := saveAll(*r, *ir, out); err != nil {
			return err
		}
	}
	return nil
}

// saveAll writes results.json (if any shape but the idle ones ran: a run of the idle
// shape alone leaves the other shapes' results as they are) and idle.json (if an
// idle shape ran).
func saveAll(r Results, ir IdleResults, out string) error {
	if len(r.Measurements) > 0 {
		if err := Save(r, out); err != nil {
			return err
		}
	}
	if len(ir.Pairs) > 0 || len(ir.Skipped) > 0 {
		return IdleReport(io.Discard, ir, out)
	}
	return nil
}

// podmanTurn is the Podman baseline's turn in the rotation: the lab stack paused, the
// Podman containers running for settle, then checkpointed one after the other, then
// paused again and the lab stack resumed (also when something failed: nothing stays
// paused).
func podmanTurn(ctx context.Context, b *Bench, pm *Podman, stack []Ctr, pcs []podmanCtr, settle time.Duration) Measurement {
	m := Measurement{Method: MethodPodman, Verdict: "n/a (no cut)"}
	resume := context.WithoutCancel(ctx)
	err := pauseStack(ctx, stack, true)
	defer func() {
		if err := pauseStack(resume, stack, false); err != nil {
			b.Log("WARNING: %v", err)
		}
	}()
	if err == nil {
		err = pm.Unpause(ctx, pcs)
	}
	if err != nil {
		m.Error = err.Error()
		return m
	}
	time.Sleep(settle + 2*time.Second) // traffic back to normal after the pause
	started := time.Now().UTC().Format(time.RFC3339Nano)
	m = pm.Checkpoint(ctx, pcs)
	m.Started = started
	if err := pm.Pause(resume, pcs); err != nil {
		m.Error = strings.TrimPrefix(m.Error+"; "+err.Error(), "; ")
	}
	return m
}

// pauseStack pauses (or unpauses) the lab stack's containers, node by node.
func pauseStack(ctx context.Context, cs []Ctr, pause bool) error {
	verb := "unpause"
	if pause {
		verb = "pause"
	}
	byNode := map[string][]Ctr{}
	for _, c := range cs {
		byNode[c.Node.Name] = append(byNode[c.Node.Name], c)
	}
	var errs []error
	for _, group := range byNode {
		args := []string{verb}
		for _, c := range group {
			args = append(args, c.ID)
		}
		if _, err := docker(ctx, group[0].Node, args...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stackName is the stack of shape s: letters and digits of its name.
func stackName(s Shape) string {
	return "b" + strings.NewReplacer("-", "", "_", "").Replace(s.Name)
}

// runShape deploys shape s on the lab and measures every method reps times, the order
// rotated from one repetition to the next. With pm, the Podman baseline takes part in
// the rotation: its containers run on the host beside the lab stack (podman has no
// swarm overlay) and are paused (cgroup freezer) while the lab's methods run; for its
// own turn the lab stack's containers are paused instead, so neither stack's traffic
// competes with the other's measurement.
func runShape(ctx context.Context, logf func(string, ...any), r *Results, b *Bench, pm *Podman, s Shape, si, reps int, stamp string, settle time.Duration) error {
	stack, cs, undeploy, err := deployShape(ctx, logf, b, s, si)
	defer undeploy()
	if err != nil {
		return err
	}
	methods := LabMethods
	var pcs []podmanCtr
	if pm != nil {
		var err error
		pcs, err = pm.Up(ctx, s, "bench-pm-"+stamp)
		defer pm.Down(context.WithoutCancel(ctx), pcs)
		if err == nil {
			err = pm.Pause(ctx, pcs)
		}
		if err != nil {
			logf("BASELINE FAILED: %s on %s: %v", MethodPodman, s.Name, err)
			r.Skipped = append(r.Skipped, Skip{Shape: s.Name, Method: MethodPodman, Why: err.Error()})
		} else {
			methods = append(slices.Clone(LabMethods), MethodPodman)
		}
	}
	for rep := range reps {
		for order, method := range Rotate(methods, rep) {
			if err := ctx.Err(); err != nil {
				return err
			}
			time.Sleep(settle)
			id := fmt.Sprintf("%s-%s-%s-r%d", stack, stamp, strings.ReplaceAll(method, "-", ""), rep)
			if method == MethodPodman {
				m := podmanTurn(ctx, b, pm, cs, pcs, settle)
				m.Shape, m.N, m.Rep, m.Order = s.Name, s.N, rep, order
				logLine(logf, m)
				r.Measurements = append(r.Measurements, m)
				continue
			}
			t0 := time.Now()
			var m Measurement
			switch method {
			case MethodDockerSeq:
				m = b.RunDocker(ctx, id, cs, false)
			case MethodDockerPar:
				m = b.RunDocker(ctx, id, cs, true)
			case MethodRuncPar:
				m = b.RunRunc(ctx, cs)
			default:
				m = b.RunAlgorithm(ctx, stack, method, id, cs)
			}
			t1 := time.Now()
			m.Shape, m.N, m.Rep, m.Order, m.Started = s.Name, s.N, rep, order, t0.UTC().Format(time.RFC3339Nano)
			time.Sleep(time.Second) // traffic resumes: the window's longest stall closes
			win, werr := Window(ctx, cs, t0, t1)
			if werr != nil {
				m.Error = strings.TrimPrefix(m.Error+"; "+werr.Error(), "; ")
			}
			if slices.Contains(Algorithms, method) {
				b.FillReleased(&m)
			}
			for i := range m.Containers {
				m.Containers[i].App = win[m.Containers[i].Container]
				m.Containers[i].Big = m.Containers[i].Big && s.Kind == "mixed"
			}
			logLine(logf, m)
			r.Measurements = append(r.Measurements, m)
		}
	}
	return nil
}

// deployShape deploys shape s (the si-th of the run) on the lab, waits until it is
// healthy and returns its stack, containers and what removes it (call it also on error).
func deployShape(ctx context.Context, logf func(string, ...any), b *Bench, s Shape, si int) (string, []Ctr, func(), error) {
	stack := stackName(s)
	nothing := func() {}
	dir, err := os.MkdirTemp(b.Scratch, "compose-")
	if err != nil {
		return stack, nil, nothing, err
	}
	file := filepath.Join(dir, stack+".yml")
	if err := os.WriteFile(file, []byte(Compose(s, 60+si)), 0o600); err != nil {
		return stack, nil, nothing, err
	}
	logf("shape %s: deploying stack %s (%d containers)", s.Name, stack, s.N)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	undeploy := func() { removeStack(context.WithoutCancel(ctx), logf, b, stack) }
	if err := lab.Deploy(ctx, log, b.Plan, b.Images, file, stack, 4*time.Minute); err != nil {
		return stack, nil, undeploy, err
	}
	cs, err := StackContainers(ctx, b.Plan, stack)
	if err != nil {
		return stack, nil, undeploy, err
	}
	if len(cs) != s.N {
		return stack, nil, undeploy, fmt.Errorf("stack %s runs %d containers, want %d", stack, len(cs), s.N)
	}
	if err := WaitHealthy(ctx, cs, 3*time.Minute); err != nil {
		return stack, nil, undeploy, err
	}
	return stack, cs, undeploy, nil
}

func logLine(logf func(string, ...any), m Measurement) {
	var frozen, stall []float64
	for _, c := range m.Containers {
		frozen = append(frozen, c.FrozenMS)
		if c.App != nil {
			stall = append(stall, c.App.StallMS)
		}
	}
	logf("%s rep %d %-18s total %8.0f ms  frozen p50 %7.0f max %7.0f ms  stall max %7.0f ms  %6.1f MiB  %s%s",
		m.Shape, m.Rep, m.Method, m.TotalMS, Median(frozen), Pct(frozen, 1), Pct(stall, 1), float64(m.Bytes)/(1<<20), m.Verdict, errSuffix(m.Error))
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return "  ERROR: " + e
}

// removeStack removes the stack and waits until its containers are gone.
func removeStack(ctx context.Context, logf func(string, ...any), b *Bench, stack string) {
	_, _ = docker(ctx, b.Plan.Manager(), "stack", "rm", stack) // its network may stay: see below
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		cs, err := StackContainers(ctx, b.Plan, stack)
		if err == nil && len(cs) == 0 {
			// Again: the first rm cannot remove the network while tasks still end.
			_, _ = docker(ctx, b.Plan.Manager(), "stack", "rm", stack)
			return
		}
		time.Sleep(time.Second)
	}
	logf("WARNING: containers of stack %s still there after 2m", stack)
}

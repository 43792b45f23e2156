package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Methods: the four algorithms and the baselines.
const (
	MethodDockerSeq = "docker-sequential"
	MethodDockerPar = "docker-parallel"
	MethodRuncPar   = "runc-parallel"
	MethodPodman    = "podman-sequential"
)

// Algorithms are swarmckpt's algorithms, in the order of the first repetition.
var Algorithms = []string{"blocking", "chandy-lamport", "uncoordinated", "minimal"}

// LabMethods are the methods run on the lab stack, rotated per repetition.
var LabMethods = append(slices.Clone(Algorithms), MethodDockerSeq, MethodDockerPar, MethodRuncPar)

// Rotate returns methods rotated left by rep (repetition rep starts with methods[rep%n]).
func Rotate(methods []string, rep int) []string {
	n := len(methods)
	if n == 0 {
		return nil
	}
	k := rep % n
	return append(slices.Clone(methods[k:]), methods[:k]...)
}

// Shape is one stack shape of the benchmark.
type Shape struct {
	Name string // bank-5, mixed, fan-in, scale-10, ...
	// Kind: "bank" (N holders, full mesh), "mixed" (a memhog of BigMiB and N-1
	// holders), "echo" (one server and N-1 clients), "memhog" (N memhogs of BigMiB,
	// no traffic: the 8 x 128 MiB target), "idle" (N-Idle holders and Idle
	// memhogs of BigMiB that never rewrite their memory and have no connection: the
	// algorithms only, two snapshots in a row, idle.go).
	Kind   string
	N      int // containers
	BigMiB int // mixed: the memhog's size; idle: each idle container's
	Idle   int // idle: the idle containers
	Quick  bool
}

// Shapes are all shapes, in run order.
var Shapes = []Shape{
	{Name: "bank-5", Kind: "bank", N: 5, Quick: true},
	{Name: "scale-3", Kind: "echo", N: 3, Quick: true},
	{Name: "scale-10", Kind: "echo", N: 10},
	{Name: "bank-15", Kind: "bank", N: 15},
	{Name: "fan-in", Kind: "echo", N: 21},
	{Name: "scale-30", Kind: "echo", N: 30},
	{Name: "mixed", Kind: "mixed", N: 8, BigMiB: 1024},
	{Name: "memhog-8", Kind: "memhog", N: 8, BigMiB: 128},
	{Name: "idle", Kind: "idle", N: 8, Idle: 3, BigMiB: 64},
}

// PickShapes returns the shapes named in list (comma separated; "" = all, or the quick
// ones when quick).
func PickShapes(list string, quick bool) ([]Shape, error) {
	if list == "" {
		var out []Shape
		for _, s := range Shapes {
			if s.Quick || !quick {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var out []Shape
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(Shapes, func(s Shape) bool { return s.Name == strings.TrimSpace(name) })
		if i < 0 {
			names := make([]string, len(Shapes))
			for j, s := range Shapes {
				names[j] = s.Name
			}
			return nil, fmt.Errorf("unknown shape %q: use one of %s", name, strings.Join(names, ", "))
		}
		out = append(out, Shapes[i])
	}
	return out, nil
}

// AppStats is what one container's application saw in a snapshot's window (GET
// /window of bank holders and echo clients).
type AppStats struct {
	Events    int     `json:"events"`
	P50MS     float64 `json:"latency_p50_ms"`
	P99MS     float64 `json:"latency_p99_ms"`
	MaxMS     float64 `json:"latency_max_ms"`
	StallMS   float64 `json:"stall_ms"`
	Truncated bool    `json:"truncated,omitempty"`
}

// ContainerRow is one container in one measurement.
type ContainerRow struct {
	Container string `json:"container"` // SERVICE.SLOT
	ID        string `json:"id"`
	Node      string `json:"node"`
	Big       bool   `json:"big,omitempty"` // the mixed shape's memhog
	// FrozenMS: how long its processes were frozen (the agent's release log; for the
	// baselines, which freeze only while dumping, the checkpoint command's time).
	FrozenMS float64 `json:"frozen_ms"`
	// LockedMS: how long its connections were network locked (0: not locked).
	LockedMS float64 `json:"locked_ms"`
	DumpMS   float64 `json:"dump_ms"`
	// CommitMS: from the start of the snapshot to its commit (the whole method's time
	// for the baselines, which have no commit).
	CommitMS float64   `json:"commit_ms"`
	Bytes    int64     `json:"bytes"`
	App      *AppStats `json:"app,omitempty"`
	// Reused: the snapshot points at an earlier snapshot's images of this container
	// (minimal: unchanged since), Bytes are theirs; nothing was written.
	Reused bool `json:"reused,omitempty"`
}

// Measurement is one method's snapshot of one stack in one repetition.
type Measurement struct {
	Shape   string `json:"shape"`
	N       int    `json:"containers"`
	Rep     int    `json:"rep"`
	Order   int    `json:"order"` // position within the repetition
	Method  string `json:"method"`
	ID      string `json:"id,omitempty"`
	Started string `json:"started"`
	// TotalMS: wall time of the whole method (the snapshot command, or the script).
	TotalMS float64 `json:"total_ms"`
	Bytes   int64   `json:"bytes"`
	// Verdict: the cut checker's ("consistent", "INCONSISTENT: ...") or "n/a" for
	// baselines (no cut).
	Verdict    string         `json:"verdict"`
	Error      string         `json:"error,omitempty"`
	Containers []ContainerRow `json:"per_container"`
}

// Skip records a method that could not run, and why.
type Skip struct {
	Shape  string `json:"shape,omitempty"`
	Method string `json:"method"`
	Why    string `json:"why"`
}

// Results is the whole run (results.json).
type Results struct {
	Command      string        `json:"command"`
	Host         string        `json:"host"`
	Started      string        `json:"started"`
	Reps         int           `json:"reps"`
	Measurements []Measurement `json:"measurements"`
	Skipped      []Skip        `json:"skipped,omitempty"`
	// Sim: the simulator calibrated from this run, its per-shape comparison with the lab
	// and its curves up to 10,000 containers (--sim).
	Sim *SimResults `json:"sim,omitempty"`
	// Failed lists the shapes that could not be measured (deploy or health failed).
	Failed []string `json:"failed_shapes,omitempty"`
}

// Pct is the nearest-rank percentile p (0..1) of v; NaN when v is empty.
func Pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Median of v (NaN when empty).
func Median(v []float64) float64 { return Pct(v, 0.5) }

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Bench holds what every method needs.
type Bench struct {
	Bin     string   // swarmckpt binary
	Plan    lab.Plan // the lab
	Images  string   // workload image tars (podman loads them)
	Scratch string   // where raw runc images go (removed after each measurement)
	Log     func(format string, args ...any)
}

func (b *Bench) env() []string {
	d := b.Plan.Daemons
	return append(os.Environ(), "SWARMCKPT_NATS="+d.NATSURL(), "SWARMCKPT_DATA_DIR="+d.Dir)
}

// RunAlgorithm takes one snapshot of stack with algo through the swarmckpt CLI (as a
// user does), reads the manifest it prints and the agents' release lines, then
// removes the snapshot (its images would fill the disk over a run).
func (b *Bench) RunAlgorithm(ctx context.Context, stack, algo, id string, cs []Ctr) Measurement {
	m := b.Snapshot(ctx, stack, algo, id)
	b.Remove(ctx, id)
	return m
}

// Snapshot takes one snapshot of stack with algo through the swarmckpt CLI and reads
// the manifest it prints; the snapshot stays (Remove).
func (b *Bench) Snapshot(ctx context.Context, stack, algo, id string) Measurement {
	m := Measurement{Method: algo, ID: id}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, b.Bin, "snapshot", stack, "--algorithm", algo, "--id", id, "--output", "json", "--timeout", "5m")
	cmd.Env = b.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	m.TotalMS = ms(time.Since(t0))
	var man store.Manifest
	if jerr := json.Unmarshal(stdout.Bytes(), &man); jerr != nil {
		m.Error = fmt.Sprintf("snapshot %s: %v; no manifest (%v): %s", id, err, jerr, lastLine(stderr.String()))
		m.Verdict = "none"
		return m
	}
	if err != nil {
		m.Error = fmt.Sprintf("snapshot %s: %v: %s", id, err, lastLine(stderr.String()))
	}
	if man.State != store.StateCommitted && m.Error == "" {
		m.Error = fmt.Sprintf("snapshot %s ended %s: %s", id, man.State, man.Reason)
	}
	for _, c := range man.Containers {
		row := ContainerRow{Container: c.Key(), ID: c.ContainerID, Node: c.Node, DumpMS: float64(c.DumpMS),
			FrozenMS: float64(c.FreezeMS), CommitMS: float64(man.TotalMS), Big: c.Service == "memhog" || strings.HasSuffix(c.Service, "_memhog")}
		if c.Images != nil {
			row.Bytes = c.Images.Bytes()
			// A set of another snapshot: an unchanged container's images reused (minimal).
			row.Reused = filepath.Base(c.Images.Dir) != node.SetID(man.ID, c.Key())
		}
		row.Container = strings.TrimPrefix(row.Container, stack+"_")
		m.Bytes += row.Bytes
		m.Containers = append(m.Containers, row)
	}
	switch v := man.Verdict; {
	case v == nil:
		m.Verdict = "not checked"
	case v.Error != "":
		m.Verdict = "checker error: " + v.Error
	case v.Consistent:
		m.Verdict = "consistent"
	case strings.HasPrefix(v.Summary, "INCONSISTENT"):
		m.Verdict = v.Summary
	default:
		m.Verdict = "INCONSISTENT: " + v.Summary
	}
	return m
}

// Remove removes snapshot id (its images would fill the disk over a run).
func (b *Bench) Remove(ctx context.Context, id string) {
	rm := exec.CommandContext(ctx, b.Bin, "rm", id)
	rm.Env = b.env()
	if out, err := rm.CombinedOutput(); err != nil {
		b.Log("WARNING: swarmckpt rm %s: %v: %s (its images stay on the nodes)", id, err, lastLine(string(out)))
	}
}

// FillReleased sets each container's frozen and locked time of algorithm measurement m
// from the agents' "container released" lines. Call it a while after the snapshot
// returned: the agents thaw and unlock after the commit, so the lines come after the
// command's answer. It reads until two reads 300 ms apart agree.
func (b *Bench) FillReleased(m *Measurement) {
	var rel Released
	var err error
	for prev := -1; ; {
		if rel, err = ReadReleased(b.Plan.Daemons.Dir, m.ID); err != nil {
			m.Error = strings.TrimPrefix(m.Error+"; "+err.Error(), "; ")
			return
		}
		n := len(rel.FrozenMS) + len(rel.LockedMS)
		if n == prev {
			break
		}
		prev = n
		time.Sleep(300 * time.Millisecond)
	}
	for i := range m.Containers {
		c := &m.Containers[i]
		if v, ok := lookupID(rel.FrozenMS, c.ID); ok {
			c.FrozenMS = v
		} else if c.FrozenMS == 0 {
			// Not frozen by the algorithm (uncoordinated, minimal): CRIU freezes the
			// process tree for its dump (leave-running) and thaws it at the end.
			c.FrozenMS = c.DumpMS
		}
		if v, ok := lookupID(rel.LockedMS, c.ID); ok {
			c.LockedMS = v
		}
	}
}

// lookupID finds a container's value by its ID, either one a prefix of the other (the
// agent may log short or full IDs).
func lookupID(m map[string]float64, id string) (float64, bool) {
	if v, ok := m[id]; ok {
		return v, true
	}
	for k, v := range m {
		if k != "" && id != "" && (strings.HasPrefix(k, id) || strings.HasPrefix(id, k)) {
			return v, true
		}
	}
	return 0, false
}

// each runs f on every container, one after the other or all at once, and fills in
// the per-container time and bytes f reports.
func each(cs []Ctr, parallel bool, f func(c Ctr) (int64, error)) ([]ContainerRow, []string) {
	rows := make([]ContainerRow, len(cs))
	errs := make([]string, len(cs))
	one := func(i int) {
		c := cs[i]
		t := time.Now()
		n, err := f(c)
		d := ms(time.Since(t))
		rows[i] = ContainerRow{Container: c.Key(), ID: c.ID, Node: c.Node.Name, Big: c.Service == "memhog",
			FrozenMS: d, DumpMS: d, Bytes: n}
		if err != nil {
			errs[i] = c.Key() + ": " + err.Error()
		}
	}
	if parallel {
		var wg sync.WaitGroup
		for i := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
		wg.Wait()
	} else {
		for i := range cs {
			one(i)
		}
	}
	var bad []string
	for _, e := range errs {
		if e != "" {
			bad = append(bad, e)
		}
	}
	return rows, bad
}

// RunDocker is what a user does today without swarmckpt: `docker checkpoint create
// --leave-running` on every container of the stack, one after the other (parallel
// false) or all at once. No consistency: no verdict. The checkpoints are removed after.
func (b *Bench) RunDocker(ctx context.Context, name string, cs []Ctr, parallel bool) Measurement {
	m := Measurement{Method: MethodDockerSeq, Verdict: "n/a (no cut)"}
	if parallel {
		m.Method = MethodDockerPar
	}
	t0 := time.Now()
	rows, errs := each(cs, parallel, func(c Ctr) (int64, error) {
		if _, err := docker(ctx, c.Node, "checkpoint", "create", "--leave-running", c.ID, name); err != nil {
			return 0, err
		}
		return DirBytes(filepath.Join(c.Node.DataRoot, "containers", c.ID, "checkpoints", name)), nil
	})
	m.TotalMS = ms(time.Since(t0))
	b.finish(&m, rows, errs)
	for _, c := range cs {
		_, _ = docker(ctx, c.Node, "checkpoint", "rm", c.ID, name)
	}
	return m
}

// RunRunc checkpoints every container at once with raw `runc checkpoint
// --leave-running` (CRIU's options from /etc/criu/runc.conf, tcp-established): the
// data-plane floor, no coordination, no network lock across containers.
func (b *Bench) RunRunc(ctx context.Context, cs []Ctr) Measurement {
	m := Measurement{Method: MethodRuncPar, Verdict: "n/a (no cut)"}
	dir, err := os.MkdirTemp(b.Scratch, "runc-")
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	rows, errs := each(cs, true, func(c Ctr) (int64, error) {
		img := filepath.Join(dir, c.Key())
		if err := os.MkdirAll(img, 0o700); err != nil {
			return 0, err
		}
		out, err := exec.CommandContext(ctx, "runc", "--root", c.Node.RuncRoot, "checkpoint", "--leave-running",
			"--image-path", img, "--work-path", img, c.ID).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("runc checkpoint: %w: %s", err, lastLine(string(out)))
		}
		return DirBytes(img), nil
	})
	m.TotalMS = ms(time.Since(t0))
	b.finish(&m, rows, errs)
	return m
}

func (b *Bench) finish(m *Measurement, rows []ContainerRow, errs []string) {
	for i := range rows {
		rows[i].CommitMS = m.TotalMS
		m.Bytes += rows[i].Bytes
	}
	m.Containers = rows
	if len(errs) > 0 {
		m.Error = strings.Join(errs, "; ")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Podman runs a shape's containers under Podman (the single-container tool users pick
// today) and checkpoints them one after the other with `podman container checkpoint
// --leave-running --tcp-established --export`. Podman has no overlay network across
// the lab's nodes: its containers run on one host with the host's network, talking
// over loopback only (ports PortBase+i for peers, HTTPBase+i for /window).
type Podman struct {
	Images   string
	Scratch  string
	PortBase int
	HTTPBase int
	Log      func(format string, args ...any)
}

// podmanCtr is one Podman container: its name, the workload binary and its HTTP port.
type podmanCtr struct {
	name, app, key string
	http           int
	big            bool
}

// Available says why Podman cannot run here ("" if it can).
func (p *Podman) Available() string {
	if _, err := exec.LookPath("podman"); err != nil {
		return "podman is not installed: install it with 'apt-get install -y podman' (make setup does)"
	}
	return ""
}

func podman(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "podman", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, lastLine(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Load loads the workload images from the tars (again each run: an image of an older
// build under the same tag would lack GET /window).
func (p *Podman) Load(ctx context.Context) error {
	for _, w := range []string{"bank", "echo", "memhog"} {
		if _, err := podman(ctx, "load", "-i", filepath.Join(p.Images, w+".tar")); err != nil {
			return err
		}
	}
	return nil
}

// Up starts shape s's containers (names PREFIX-i) and waits until they are healthy.
func (p *Podman) Up(ctx context.Context, s Shape, prefix string) ([]podmanCtr, error) {
	// Podman 4.3 asks for rlimits above this machine's hard limits by default
	// ("error setting rlimit type 7"): set them explicitly.
	run := func(name, image string, args ...string) error {
		_, err := podman(ctx, append([]string{"run", "-d", "--name", name, "--network", "host",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", image}, args...)...)
		return err
	}
	var cs []podmanCtr
	port := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p.PortBase+i) }
	httpAddr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p.HTTPBase+i) }
	switch s.Kind {
	case "bank", "mixed":
		holders := s.N
		if s.Kind == "mixed" {
			holders--
			name := prefix + "-memhog"
			if err := run(name, "swarmckpt/memhog:dev", "--mib", fmt.Sprint(s.BigMiB), "--dirty-fraction", "0.05", "--listen", httpAddr(0)); err != nil {
				return cs, err
			}
			cs = append(cs, podmanCtr{name: name, key: "memhog.1", http: p.HTTPBase, big: true})
		}
		var peers []string
		for i := 1; i <= holders; i++ {
			peers = append(peers, port(i))
		}
		for i := 1; i <= holders; i++ {
			name := fmt.Sprintf("%s-holder-%d", prefix, i)
			if err := run(name, "swarmckpt/bank:dev", "holder", "--id", fmt.Sprint(i), "--count", fmt.Sprint(holders),
				"--peers", strings.Join(peers, ","), "--initial", "1000", "--interval", "20ms",
				"--listen", port(i), "--http", httpAddr(i)); err != nil {
				return cs, err
			}
			cs = append(cs, podmanCtr{name: name, app: "/bank", key: fmt.Sprintf("holder.%d", i), http: p.HTTPBase + i})
		}
	case "memhog":
		for i := 1; i <= s.N; i++ {
			name := fmt.Sprintf("%s-memhog-%d", prefix, i)
			if err := run(name, "swarmckpt/memhog:dev", "--mib", fmt.Sprint(s.BigMiB), "--dirty-fraction", "0.05", "--listen", httpAddr(i)); err != nil {
				return cs, err
			}
			cs = append(cs, podmanCtr{name: name, key: fmt.Sprintf("memhog.%d", i), http: p.HTTPBase + i})
		}
	case "echo":
		name := prefix + "-server"
		if err := run(name, "swarmckpt/echo:dev", "server", "--listen", port(0), "--http", httpAddr(0)); err != nil {
			return cs, err
		}
		cs = append(cs, podmanCtr{name: name, key: "server.1", http: p.HTTPBase})
		for i := 1; i < s.N; i++ {
			name := fmt.Sprintf("%s-client-%d", prefix, i)
			if err := run(name, "swarmckpt/echo:dev", "client", "--connect", port(0), "--interval", "20ms", "--http", httpAddr(i)); err != nil {
				return cs, err
			}
			cs = append(cs, podmanCtr{name: name, app: "/echo", key: fmt.Sprintf("client.%d", i), http: p.HTTPBase + i})
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var bad []string
		for _, c := range cs {
			if c.app == "" {
				continue
			}
			if out, err := podman(ctx, "exec", c.name, c.app, "get", fmt.Sprintf("http://127.0.0.1:%d/healthz", c.http)); err != nil {
				bad = append(bad, c.key+": "+lastLine(out))
			}
		}
		if len(bad) == 0 {
			return cs, nil
		}
		if time.Now().After(deadline) {
			return cs, fmt.Errorf("podman containers not healthy after 2m: %s", strings.Join(bad, "; "))
		}
		time.Sleep(time.Second)
	}
}

// Down removes the containers (paused ones too).
func (p *Podman) Down(ctx context.Context, cs []podmanCtr) {
	for _, c := range cs {
		if _, err := podman(ctx, "rm", "-f", "-t", "1", c.name); err != nil {
			p.Log("WARNING: %v", err)
		}
	}
}

// Pause freezes the containers (podman pause: the cgroup freezer) while the lab's
// methods run; Unpause resumes them for their own turn.
func (p *Podman) Pause(ctx context.Context, cs []podmanCtr) error { return p.pause(ctx, "pause", cs) }

// Unpause resumes containers paused by Pause.
func (p *Podman) Unpause(ctx context.Context, cs []podmanCtr) error {
	return p.pause(ctx, "unpause", cs)
}

func (p *Podman) pause(ctx context.Context, verb string, cs []podmanCtr) error {
	if len(cs) == 0 {
		return nil
	}
	args := []string{verb}
	for _, c := range cs {
		args = append(args, c.name)
	}
	_, err := podman(ctx, args...)
	return err
}

// Checkpoint checkpoints every container one after the other and asks the applications
// what they saw.
func (p *Podman) Checkpoint(ctx context.Context, cs []podmanCtr) Measurement {
	m := Measurement{Method: MethodPodman, Verdict: "n/a (no cut)"}
	dir, err := os.MkdirTemp(p.Scratch, "podman-")
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	var errs []string
	for _, c := range cs {
		t := time.Now()
		file := filepath.Join(dir, c.name+".tar")
		_, err := podman(ctx, "container", "checkpoint", "--leave-running", "--tcp-established", "--export", file, c.name)
		d := ms(time.Since(t))
		row := ContainerRow{Container: c.key, ID: c.name, Node: "host", Big: c.big, FrozenMS: d, DumpMS: d}
		if err != nil {
			errs = append(errs, err.Error())
		} else if fi, err := os.Stat(file); err == nil {
			row.Bytes = fi.Size()
		}
		m.Containers = append(m.Containers, row)
	}
	m.TotalMS = ms(time.Since(t0))
	t1 := time.Now()
	time.Sleep(time.Second) // let traffic resume, so the window's stall closes
	for i, c := range cs {
		m.Containers[i].CommitMS = m.TotalMS
		m.Bytes += m.Containers[i].Bytes
		if c.app == "" {
			continue
		}
		out, err := podman(ctx, "exec", c.name, c.app, "get", fmt.Sprintf("http://127.0.0.1:%d/window?from=%d&to=%d", c.http, t0.UnixNano(), t1.UnixNano()))
		var st AppStats
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		if err != nil {
			errs = append(errs, c.key+" window: "+err.Error())
			continue
		}
		m.Containers[i].App = &st
	}
	if len(errs) > 0 {
		m.Error = errors.Join(toErrs(errs)...).Error()
	}
	return m
}

func toErrs(s []string) []error {
	out := make([]error, len(s))
	for i, e := range s {
		out[i] = errors.New(e)
	}
	return out
}

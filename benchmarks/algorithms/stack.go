package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// Compose returns the compose file of shape s as stack (network subnet 10.240.SUB.0/24).
// Every service is labelled swarmckpt.enable; the bank and echo programs are the
// workloads of benchmarks/workloads.
func Compose(s Shape, sub int) string {
	var b strings.Builder
	b.WriteString("version: \"3.8\"\nservices:\n")
	svc := func(name, image, cmd string, replicas int, extra string) {
		fmt.Fprintf(&b, "  %s:\n    image: %s\n    command: [%s]\n    hostname: \"%s-{{.Task.Slot}}\"\n%s    networks: [net]\n"+
			"    deploy:\n      endpoint_mode: dnsrr\n      replicas: %d\n      restart_policy:\n        condition: any\n%s      labels:\n        swarmckpt.enable: \"true\"\n",
			name, image, cmd, name, envFor(name), replicas, placementFor(extra))
	}
	switch s.Kind {
	case "bank", "mixed":
		holders := s.N
		if s.Kind == "mixed" {
			holders = s.N - 1
			svc("memhog", "swarmckpt/memhog:dev", fmt.Sprintf(`"--mib", "%d", "--dirty-fraction", "0.05", "--listen", ":8080"`, s.BigMiB), 1, "")
		}
		svc("holder", "swarmckpt/bank:dev", fmt.Sprintf(`"holder", "--count", "%d", "--service", "holder", "--initial", "1000", "--interval", "20ms", "--listen", ":9000", "--http", ":8080"`, holders), holders, "")
	case "idle":
		holders := s.N - s.Idle
		svc("holder", "swarmckpt/bank:dev", fmt.Sprintf(`"holder", "--count", "%d", "--service", "holder", "--initial", "1000", "--interval", "20ms", "--listen", ":9000", "--http", ":8080"`, holders), holders, "")
		// Idle: no rewrite, no progress log (a log line every 10 s is CPU time, which
		// makes a container changed for minimal).
		svc("idle", "swarmckpt/memhog:dev", fmt.Sprintf(`"--mib", "%d", "--dirty-fraction", "0", "--progress", "0", "--listen", ":8080"`, s.BigMiB), s.Idle, "")
	case "memhog":
		svc("memhog", "swarmckpt/memhog:dev", fmt.Sprintf(`"--mib", "%d", "--dirty-fraction", "0.05", "--listen", ":8080"`, s.BigMiB), s.N, "")
	case "echo":
		svc("server", "swarmckpt/echo:dev", `"server", "--listen", ":7000", "--http", ":8080"`, 1, "node.role == manager")
		svc("client", "swarmckpt/echo:dev", `"client", "--connect", "server:7000", "--interval", "20ms", "--http", ":8080"`, s.N-1, "")
	}
	fmt.Fprintf(&b, "networks:\n  net:\n    driver: overlay\n    attachable: true\n    ipam:\n      config:\n        - subnet: 10.240.%d.0/24\n", sub)
	return b.String()
}

func envFor(service string) string {
	if service == "holder" {
		return "    environment:\n      BANK_ID: \"{{.Task.Slot}}\"\n"
	}
	return ""
}

func placementFor(constraint string) string {
	if constraint == "" {
		return ""
	}
	return fmt.Sprintf("      placement:\n        constraints: [\"%s\"]\n", constraint)
}

// Ctr is one running container of the stack.
type Ctr struct {
	ID      string // full container ID
	Service string // stack-less service name: holder, memhog, server, client
	Slot    int
	Node    lab.Node
}

// Key is SERVICE.SLOT.
func (c Ctr) Key() string { return fmt.Sprintf("%s.%d", c.Service, c.Slot) }

// App is the workload binary whose GET /window tells what the container's application
// saw ("" for containers without one: the echo server, the memhog).
func (c Ctr) App() string {
	switch c.Service {
	case "holder":
		return "/bank"
	case "client":
		return "/echo"
	}
	return ""
}

func docker(ctx context.Context, n lab.Node, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", n.DockerHost()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker -H %s %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// StackContainers lists the running containers of stack on every node of p.
func StackContainers(ctx context.Context, p lab.Plan, stack string) ([]Ctr, error) {
	var out []Ctr
	for _, n := range p.Nodes {
		s, err := docker(ctx, n, "ps", "--no-trunc", "--filter", "label=com.docker.stack.namespace="+stack,
			"--format", `{{.ID}} {{.Label "com.docker.swarm.service.name"}} {{.Label "com.docker.swarm.task.name"}}`)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(s, "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			svc := strings.TrimPrefix(f[1], stack+"_")
			// task name: STACK_SERVICE.SLOT.TASKID
			parts := strings.Split(f[2], ".")
			slot := 0
			if len(parts) >= 2 {
				slot, _ = strconv.Atoi(parts[1])
			}
			out = append(out, Ctr{ID: f[0], Service: svc, Slot: slot, Node: n})
		}
	}
	return out, nil
}

// WaitHealthy polls every container with a workload probe until its /healthz answers ok
// (all bank holders connected to all peers, every echo client connected), or timeout.
func WaitHealthy(ctx context.Context, cs []Ctr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		for _, c := range cs {
			if c.App() == "" {
				continue
			}
			if out, err := docker(ctx, c.Node, "exec", c.ID, c.App(), "get", "/healthz"); err != nil {
				bad = append(bad, c.Key()+": "+lastLine(out))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack not healthy after %s: %s", timeout, strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Window asks every container's application what it saw in [from, to] (GET /window),
// in parallel; containers without one get nil.
func Window(ctx context.Context, cs []Ctr, from, to time.Time) (map[string]*AppStats, error) {
	out := map[string]*AppStats{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []string
	sem := make(chan struct{}, 6)
	for _, c := range cs {
		if c.App() == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			url := fmt.Sprintf("/window?from=%d&to=%d", from.UnixNano(), to.UnixNano())
			s, err := docker(ctx, c.Node, "exec", c.ID, c.App(), "get", url)
			var st AppStats
			if err == nil {
				err = json.Unmarshal([]byte(s), &st)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, c.Key()+": "+err.Error())
				return
			}
			out[c.Key()] = &st
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, fmt.Errorf("window: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Released is what the node agents logged when a snapshot released its containers
// ("container released" lines): per container ID, the longest frozen and locked time.
type Released struct {
	FrozenMS, LockedMS map[string]float64
}

// ReadReleased scans the lab's agent logs (DIR/agent-*.log) for the "container
// released" lines of snapshot id.
func ReadReleased(dir, id string) (Released, error) {
	r := Released{FrozenMS: map[string]float64{}, LockedMS: map[string]float64{}}
	files, err := filepath.Glob(filepath.Join(dir, "agent-*.log"))
	if err != nil || len(files) == 0 {
		return r, fmt.Errorf("no agent logs in %s (is the lab up with its daemons?)", dir)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return r, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="container released"`) || !strings.Contains(line, "snapshot="+id+" ") {
				continue
			}
			kv := ParseLogfmt(line)
			ms, err := strconv.ParseFloat(kv["held_ms"], 64)
			if err != nil {
				continue
			}
			m := r.FrozenMS
			if kv["what"] == "lock" {
				m = r.LockedMS
			}
			m[kv["container"]] = max(m[kv["container"]], ms)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return r, fmt.Errorf("read %s: %w", f, err)
		}
	}
	return r, nil
}

// ParseLogfmt splits a slog text line into its key=value pairs (values may be quoted).
func ParseLogfmt(line string) map[string]string {
	kv := map[string]string{}
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if uq, err := strconv.Unquote(line[i:min(j+1, len(line))]); err == nil {
				val = uq
			} else {
				val = line[i+1 : min(j, len(line))]
			}
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		if sp := strings.LastIndexByte(key, ' '); sp >= 0 {
			key = key[sp+1:]
		}
		kv[key] = val
	}
	return kv
}

// DirBytes is the total size of the regular files under dir.
func DirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

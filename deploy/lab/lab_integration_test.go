package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func requireLab(t *testing.T) string {
	t.Helper()
	if r := IntegrationSkipReason(); r != "" {
		t.Skip(r)
	}
	dir, err := ImageDirForTests()
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tar")); len(m) == 0 {
		t.Fatalf("no workload images in %s: run 'make images' first", dir)
	}
	return dir
}

// assertClean fails unless nothing of lab cfg remains on the machine.
func assertClean(t *testing.T, cfg Config) {
	t.Helper()
	if left := leftovers(cfg); len(left) > 0 {
		t.Errorf("lab %s left behind: %v", cfg.Name, left)
	}
	run, data := filepath.Join(cfg.RunDir, cfg.Name), filepath.Join(cfg.DataDir, cfg.Name)
	if procs := procsMentioning(run+"/", data+"/"); len(procs) > 0 {
		t.Errorf("lab %s left processes: %v", cfg.Name, procs)
	}
	if mps, _ := mountsUnder(run, data); len(mps) > 0 {
		t.Errorf("lab %s left mounts: %v", cfg.Name, mps)
	}
}

// TestIntegrationLabEcho brings up a 2-node lab, deploys the echo stack with client and
// server on different nodes, proves replies flow across nodes over one TCP connection,
// checks the lab refuses a second `up`, and tears it down leaving nothing.
func TestIntegrationLabEcho(t *testing.T) {
	images := requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := testLogger(t)
	cfg := DefaultConfig()
	cfg.Name, cfg.Nodes, cfg.ImageDir = "itlab", 2, images
	// With the CLI binary built (make test-integration sets SWARMCKPT_BIN) the lab also runs
	// swarmckpt's daemons, and Down must remove them too.
	cfg.Binary = os.Getenv("SWARMCKPT_BIN")
	cfg.Daemons = cfg.Binary != ""
	// Its workers run with TLS (the other labs of the tests run without): the migrate
	// below moves the images between them over HTTPS, driven by agents that trust the
	// lab's CA.
	cfg.TLS = cfg.Daemons
	if rt := filepath.Join(filepath.Dir(cfg.Binary), "swarmckpt-runtime"); cfg.Daemons {
		if _, err := os.Stat(rt); err != nil {
			t.Fatalf("the migrate over TLS needs swarmckpt-runtime next to %s (make build): %v", cfg.Binary, err)
		}
		cfg.Runtime = rt
	}
	if err := Down(ctx, log, cfg); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("clean previous run: %v", err)
	}
	start := time.Now()
	p, err := Up(ctx, log, cfg)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("INTEGRATION lab up --nodes 2 took %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := Down(context.Background(), log, cfg); err != nil {
			t.Errorf("lab down: %v", err)
		}
		assertClean(t, cfg)
	})

	if _, err := Up(ctx, log, cfg); !errors.Is(err, ErrExists) {
		t.Errorf("second lab up: got %v, want ErrExists", err)
	}
	for _, s := range Status(ctx, p) {
		if !s.Up || s.SwarmState != "active" {
			t.Fatalf("node %s not up in the swarm: %+v", s.Name, s)
		}
	}

	if err := Deploy(ctx, log, p, images, "../examples/echo.yml", "echo", 2*time.Minute); err != nil {
		t.Fatalf("deploy echo: %v", err)
	}
	tasks, err := RunningTasks(ctx, p, "echo")
	if err != nil {
		t.Fatal(err)
	}
	byService := map[string]Task{}
	for _, tk := range tasks {
		byService[tk.Service] = tk
	}
	client, server := byService["echo_client"], byService["echo_server"]
	if client.ContainerID == "" || server.ContainerID == "" {
		t.Fatalf("want echo_client and echo_server tasks, got %+v", tasks)
	}
	if client.Node == server.Node {
		t.Fatalf("client and server both on %s: the example must spread them", client.Node)
	}
	clientNode, _ := p.NodeByName(client.Node)

	type status struct {
		Replies, Gaps, Duplicates, Reconnects uint64
		Connected                             bool
		ConnID                                uint64 `json:"conn_id"`
		RemoteAddr                            string `json:"remote_addr"`
	}
	read := func() status {
		out, err := Exec(ctx, clientNode, client.ContainerID, "/echo", "get", "/status")
		if err != nil {
			t.Fatalf("client status: %v", err)
		}
		var s status
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("client status %q: %v", out, err)
		}
		return s
	}
	first := read()
	var last status
	deadline := time.Now().Add(60 * time.Second)
	for {
		last = read()
		if last.Replies >= first.Replies+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo replies do not flow across nodes: first %+v, last %+v", first, last)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
	if !last.Connected || last.Gaps != 0 || last.Duplicates != 0 || last.Reconnects != 0 {
		t.Fatalf("echo client reports trouble: %+v", last)
	}
	t.Logf("INTEGRATION echo: client on %s, server on %s (%v), %d replies, conn %s", client.Node, server.Node, server.IPs, last.Replies, last.RemoteAddr)
	if p.Daemons != nil {
		daemonsRestarted(t, p)
		migrateOverTLS(ctx, t, p, server.Node) // also proves the restarted daemons work
	}
}

// daemonsRestarted kills a lab worker and an agent with -9: each one's supervisor (lab
// supervise, as systemd's Restart=always would) must have it running again within
// restartWithin, the worker listening on its address again, the agent subscribed again
// ("node agent ready" logged once more), and the restart logged.
func daemonsRestarted(t *testing.T, p Plan) {
	t.Helper()
	const restartWithin = 3 * time.Second
	d := p.Daemons
	for _, v := range []struct{ role, node string }{{"worker", p.Nodes[0].Name}, {"agent", p.Nodes[1].Name}} {
		logFile := filepath.Join(d.Dir, v.role+"-"+v.node+".log")
		readies := func() int { b, _ := os.ReadFile(logFile); return strings.Count(string(b), "node agent ready") }
		ready0 := readies()
		old := p.DaemonPid(v.role, v.node)
		if old == 0 {
			t.Fatalf("no %s of %s runs", v.role, v.node)
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 the %s of %s (pid %d): %v", v.role, v.node, old, err)
		}
		killed := time.Now()
		for {
			pid := p.DaemonPid(v.role, v.node)
			up := pid != 0 && pid != old
			if up && v.role == "worker" {
				n, _ := p.NodeByName(v.node)
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.WorkerPort0+n.Index), time.Second)
				if up = err == nil; up {
					c.Close()
				}
			}
			if up && v.role == "agent" {
				up = readies() > ready0
			}
			if up {
				t.Logf("INTEGRATION %s of %s killed with -9: running again (pid %d) after %s", v.role, v.node, pid, time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Since(killed) > restartWithin {
				t.Fatalf("%s of %s killed with -9 is not running again after %s; its log:\n%s", v.role, v.node, restartWithin, tail(logFile, 8))
			}
			time.Sleep(20 * time.Millisecond)
		}
		b, _ := os.ReadFile(logFile)
		if !strings.Contains(string(b), "exited; restarting") || !strings.Contains(string(b), "signal killed") {
			t.Errorf("the supervisor of the %s of %s did not log the restart", v.role, v.node)
		}
	}
}

// migrateOverTLS moves the echo stack off node with `swarmckpt migrate` on a lab whose
// workers run with TLS, and checks that the image sets went between the workers over
// TLS: a plain client is refused by a worker, the receiving worker logged the set, and
// the set streamed during the dump (not sent again by the restore).
func migrateOverTLS(ctx context.Context, t *testing.T, p Plan, node string) {
	t.Helper()
	d := p.Daemons
	w1 := &worker.Client{Addr: fmt.Sprintf("127.0.0.1:%d", d.WorkerPort0+1)}
	if _, err := w1.Info(ctx); err == nil || !strings.Contains(err.Error(), "runs with TLS") {
		t.Fatalf("a plain client to a lab worker with TLS: %v; want it told the worker runs with TLS", err)
	}
	cmd := exec.CommandContext(ctx, d.Binary, "migrate", "echo", "--from", node)
	cmd.Env = append(os.Environ(), "SWARMCKPT_NATS="+d.NATSURL(), "SWARMCKPT_DATA_DIR="+d.Dir, "DOCKER_HOST="+p.Manager().DockerHost())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swarmckpt migrate echo --from %s over TLS: %v\n%s", node, err, out)
	}
	received, streamed, skipped := 0, 0, 0
	for _, n := range p.Nodes {
		b, _ := os.ReadFile(filepath.Join(d.Dir, "worker-"+n.Name+".log"))
		if !strings.Contains(string(b), "tls=true") {
			t.Errorf("worker %s did not start with TLS", n.Name)
		}
		received += strings.Count(string(b), "image set received")
		streamed += strings.Count(string(b), "image set dumped and streamed")
		skipped += strings.Count(string(b), "not sent again")
	}
	if received == 0 {
		t.Fatalf("no worker received an image set during the migrate:\n%s", out)
	}
	// The moving container's images streamed over TLS while it was dumped, and the
	// restore's transfer found them in place (the manifest asked over TLS too).
	if streamed == 0 || skipped != streamed {
		t.Errorf("workers logged %d streamed dumps and %d sets not sent again, want the same number, at least 1:\n%s", streamed, skipped, out)
	}
	t.Logf("INTEGRATION migrate echo --from %s between TLS workers took %s (%d sets received)", node, time.Since(start).Round(time.Millisecond), received)
}

// TestIntegrationLabDownAfterCrash fakes an `up` that died half-way (namespaces, a
// directory and a stray process of the lab, no state file) and checks Down removes all.
func TestIntegrationLabDownAfterCrash(t *testing.T) {
	if r := IntegrationSkipReason(); r != "" {
		t.Skip(r)
	}
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Name, cfg.Daemons = "itcrash", false
	_ = Down(ctx, testLogger(t), cfg)
	run := filepath.Join(cfg.RunDir, cfg.Name, cfg.Name+"-1")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{cfg.Name + "-sw", cfg.Name + "-1"} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v %s", ns, err, out)
		}
	}
	stray := exec.Command("sh", "-c", "sleep 300; true", run+"/")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = stray.Wait() }()
	if _, err := Up(ctx, testLogger(t), cfg); !errors.Is(err, ErrExists) {
		t.Fatalf("up over leftovers: got %v, want ErrExists naming them", err)
	}
	if err := Down(ctx, testLogger(t), cfg); err != nil {
		t.Fatalf("down after crash: %v", err)
	}
	assertClean(t, cfg)
	if err := Down(ctx, testLogger(t), cfg); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second down: got %v, want ErrNotFound", err)
	}
}

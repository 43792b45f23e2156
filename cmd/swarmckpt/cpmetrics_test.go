package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeTCPPorts returns n ports of 127.0.0.1 free a moment ago.
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// 'coordinator --control-plane-only --metrics ADDR' serves the embedded etcd's metrics
// there (before, --metrics was ignored in that mode).
func TestControlPlaneOnlyServesMetrics(t *testing.T) {
	p := freeTCPPorts(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	done := make(chan error, 1)
	go func() {
		done <- runCoordinator(ctx, c, []string{"--control-plane-only", "--data-dir", t.TempDir(),
			"--nats-port", fmt.Sprint(p[0]), "--etcd-port", fmt.Sprint(p[1]), "--etcd-peer-port", fmt.Sprint(p[2]),
			"--metrics", fmt.Sprintf("127.0.0.1:%d", p[3])})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	}()
	hc := http.Client{Timeout: 2 * time.Second}
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(body, "etcd_server_has_leader 1") {
		select {
		case err := <-done:
			t.Fatalf("control plane ended early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no etcd_server_has_leader 1 at --metrics within 60 s; last scrape:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p[3]))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	if !strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("scrape lacks the process metrics:\n%s", body)
	}
}

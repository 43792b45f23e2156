package natsbus_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/bus/bustest"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
)

// The same conformance suite against a real external nats-server process (Debian
// package nats-server), as `swarmckpt coordinator --nats URL` uses it.
func TestExternalNATSServerConformance(t *testing.T) {
	binary, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("SKIP EXTERNAL NATS: nats-server not on PATH; install it with 'apt-get install nats-server' to run this test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(binary, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "--auth", "ext-token")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %d", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	bustest.Run(t, func(t *testing.T) (bus.Transport, bus.Transport) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ts [2]bus.Transport
		for i := range ts {
			tr, err := natsbus.Connect(ctx, natsbus.Config{URL: url, Token: "ext-token", Log: quiet()})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			ts[i] = tr
		}
		return ts[0], ts[1]
	})
}

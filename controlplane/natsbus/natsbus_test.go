package natsbus_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/bus/bustest"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer runs a real NATS server in-process on a free loopback port.
func startServer(t *testing.T, token string) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Authorization: token})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

func TestNATSConformance(t *testing.T) {
	url := startServer(t, "s3cret")
	bustest.Run(t, func(t *testing.T) (bus.Transport, bus.Transport) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ts [2]bus.Transport
		for i := range ts {
			tr, err := natsbus.Connect(ctx, natsbus.Config{URL: url, Token: "s3cret", Log: quiet()})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			ts[i] = tr
		}
		return ts[0], ts[1]
	})
}

func TestNATSRejectsWrongToken(t *testing.T) {
	url := startServer(t, "right")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := natsbus.Connect(ctx, natsbus.Config{URL: url, Token: "wrong", Log: quiet()})
	if err == nil {
		t.Fatal("connect with a wrong token succeeded")
	}
	if !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("error does not point at the credentials: %v", err)
	}
	if _, err := natsbus.Connect(ctx, natsbus.Config{URL: url, Log: quiet()}); err == nil {
		t.Fatal("connect without a token succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []natsbus.Config{
		{},
		{URL: "nats://x", Token: "a", TokenFile: "b"},
		{URL: "nats://x", Token: "a", User: "u"},
		{URL: "nats://x", CertFile: "c"},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: Validate accepted %+v", i, c)
		}
	}
}

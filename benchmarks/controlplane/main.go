package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
)

func main() {
	workers := flag.Int("workers", 1000, "simulated workers, each with its own NATS connection")
	rounds := flag.Int("rounds", 200, "measured rounds")
	warmup := flag.Int("warmup", 10, "rounds run before measuring")
	short := flag.Bool("short", false, "CI mode: 20 measured rounds, 3 warm-up")
	timeout := flag.Duration("timeout", 30*time.Second, "bound of one round")
	flag.Parse()
	if *short {
		*rounds, *warmup = 20, 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *workers, *rounds, *warmup, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

// Stats summarises round times in milliseconds.
type Stats struct{ P50, P99, Max float64 }

func stats(ds []time.Duration) Stats {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = float64(d.Microseconds()) / 1000
	}
	slices.Sort(v)
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return Stats{P50: pct(0.5), P99: pct(0.99), Max: v[len(v)-1]}
}

// startNATS runs a NATS server in-process on a free loopback port.
func startNATS() (*natsserver.Server, error) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxConn: 1 << 16})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server not ready after 10s")
	}
	return s, nil
}

// measureOn connects a coordinator and w workers with connect and measures the rounds.
func measureOn(ctx context.Context, connect Connector, w, rounds, warmup int, timeout time.Duration) (Stats, time.Duration, error) {
	t0 := time.Now()
	ws, err := StartWorkers(ctx, connect, w)
	defer func() { _ = ws.Close() }()
	if err != nil {
		return Stats{}, 0, err
	}
	setup := time.Since(t0)
	ct, err := connect(ctx, "coordinator")
	if err != nil {
		return Stats{}, setup, err
	}
	defer ct.Close()
	c, err := NewCoordinator(ct, w)
	if err != nil {
		return Stats{}, setup, err
	}
	ds, err := Measure(ctx, c, warmup, rounds, timeout)
	if err != nil {
		return Stats{}, setup, err
	}
	return stats(ds), setup, nil
}

func run(ctx context.Context, out io.Writer, w, rounds, warmup int, timeout time.Duration) error {
	if w < 1 || rounds < 1 || warmup < 0 {
		return fmt.Errorf("--workers and --rounds must be at least 1, --warmup at least 0")
	}
	srv, err := startNATS()
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	viaNATS := func(ctx context.Context, name string) (bus.Transport, error) {
		return natsbus.Connect(ctx, natsbus.Config{URL: srv.ClientURL(), Name: name, Log: log})
	}
	ns, setup, err := measureOn(ctx, viaNATS, w, rounds, warmup, timeout)
	if err != nil {
		return fmt.Errorf("over NATS: %w", err)
	}
	one, _, err := measureOn(ctx, viaNATS, 1, rounds, warmup, timeout)
	if err != nil {
		return fmt.Errorf("over NATS, 1 worker: %w", err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "# %s, %d cores, load %s# %d workers connected to NATS in %.1f s\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), load, w, setup.Seconds())
	fmt.Fprintf(out, "BENCH controlplane transport=nats workers=1 rounds=%d round_ms_p50=%.2f round_ms_p99=%.2f round_ms_max=%.2f\n",
		rounds, one.P50, one.P99, one.Max)
	fmt.Fprintf(out, "BENCH controlplane transport=nats workers=%d rounds=%d round_ms_p50=%.1f round_ms_p99=%.1f round_ms_max=%.1f vs_1_worker_p50=%.0fx target_p50_ms=100 target_p99_ms=300 p50_of_target=%.2f p99_of_target=%.2f\n",
		w, rounds, ns.P50, ns.P99, ns.Max, ns.P50/one.P50, ns.P50/100, ns.P99/300)
	return nil
}

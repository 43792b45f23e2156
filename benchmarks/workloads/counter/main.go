// CRIU cannot dump MPTCP sockets ("inet: Unsupported proto 262"), and Go >= 1.24 makes
// listeners MPTCP by default: keep every socket plain TCP so the process can be
// checkpointed. (Not a doc comment: see doc.go.)
//
//go:debug multipathtcp=0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/probe"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "get" {
		os.Exit(probe.Main(ctx, os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	interval := fs.Duration("interval", 100*time.Millisecond, "time between increments")
	listen := fs.String("listen", ":8080", "HTTP address serving /value, /info, /healthz")
	start := fs.Int64("start", 0, "initial value")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval <= 0 {
		return errors.New("--interval must be > 0, e.g. 100ms")
	}
	log := serve.Logger(stdout, "counter")
	c := &Counter{value: *start}
	instance := serve.InstanceID()
	began := time.Now()
	log.Info("starting", "instance", instance, "interval", interval.String(), "start", *start)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /value", func(w http.ResponseWriter, _ *http.Request) {
		v, _ := c.Snapshot()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, strconv.FormatInt(v, 10))
	})
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		v, last := c.Snapshot()
		serve.JSON(w, http.StatusOK, map[string]any{
			"value": v, "instance": instance, "interval_ms": interval.Milliseconds(),
			"uptime_ms": time.Since(began).Milliseconds(), "last_tick": last,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, last := c.Snapshot()
		if age := time.Since(last); age > 10**interval+time.Second {
			http.Error(w, fmt.Sprintf("no tick for %s", age.Round(time.Millisecond)), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	go func() {
		t := time.NewTicker(*interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				log.Info("tick", "value", c.Tick(now))
			}
		}
	}()
	c.Tick(time.Now()) // first value at once, so /healthz is green from the start
	return serve.HTTP(ctx, log, *listen, mux)
}

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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/probe"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
)

const usage = `usage:
  echo server [--listen :7000] [--http :8080]
  echo client --connect HOST:PORT [--interval 10ms] [--size 0] [--churn 0] [--http :8080]
  echo get URL...`

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "get" {
		os.Exit(probe.Main(ctx, os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing mode: %w", errUsage)
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("echo "+mode, flag.ContinueOnError)
	httpAddr := fs.String("http", ":8080", "HTTP address serving /status and /healthz")
	switch mode {
	case "server":
		listen := fs.String("listen", ":7000", "TCP address to accept echo clients on")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%v: %w", err, errUsage)
		}
		return runServer(ctx, serve.Logger(stdout, "echo-server"), *listen, *httpAddr)
	case "client":
		target := fs.String("connect", "", "server address HOST:PORT (required), e.g. server:7000")
		interval := fs.Duration("interval", 10*time.Millisecond, "time between messages")
		size := fs.Int("size", 0, "payload bytes per message besides the seq")
		churn := fs.Duration("churn", 0, "also open a new connection every this long, each carrying one line and its echo (0: off)")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%v: %w", err, errUsage)
		}
		if *target == "" {
			return fmt.Errorf("--connect is required: %w", errUsage)
		}
		if *interval <= 0 || *size < 0 || *size > 32<<10 || *churn < 0 {
			return fmt.Errorf("--interval must be > 0, 0 <= --size <= 32768 and --churn >= 0: %w", errUsage)
		}
		return runClient(ctx, serve.Logger(stdout, "echo-client"), *target, *interval, *size, *churn, *httpAddr)
	default:
		return fmt.Errorf("unknown mode %q: %w", mode, errUsage)
	}
}

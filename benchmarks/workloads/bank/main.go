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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/probe"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
)

const usage = `usage:
  bank holder --id I (or env BANK_ID) --count K (--peers h1:9000,... | --service NAME)
              [--initial 1000] [--interval 20ms] [--max-amount 10] [--listen :9000] [--http :8080]
  bank query  (--holders h1:8080,... | --service NAME) [--count K] [--settle 5s] [--no-pause] [--json]
  bank get URL...`

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "get" {
		os.Exit(probe.Main(ctx, os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing mode: %w", errUsage)
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("bank "+mode, flag.ContinueOnError)
	switch mode {
	case "holder":
		var c holderConfig
		fs.IntVar(&c.ID, "id", 0, "holder id 1..count (default: env BANK_ID, e.g. {{.Task.Slot}})")
		fs.IntVar(&c.Count, "count", 0, "number of holders K (required)")
		fs.Int64Var(&c.Initial, "initial", 1000, "initial balance of every holder")
		fs.DurationVar(&c.Interval, "interval", 20*time.Millisecond, "time between transfers this holder initiates")
		fs.Int64Var(&c.MaxAmount, "max-amount", 10, "transfers move 1..max-amount")
		fs.StringVar(&c.Listen, "listen", ":9000", "TCP address for peer connections")
		fs.StringVar(&c.HTTP, "http", ":8080", "HTTP address for /state, /pause, /resume, /healthz")
		peers := fs.String("peers", "", "comma-separated host:port of all holders' --listen (self may be included)")
		fs.StringVar(&c.Service, "service", "", "DNS name resolving to all holders (swarm dnsrr service); instead of --peers")
		fs.StringVar(&c.PeerPort, "peer-port", "9000", "peer port of holders found through --service")
		fs.Uint64Var(&c.Seed, "seed", 1, "seed of the transfer choices (mixed with the id)")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%v: %w", err, errUsage)
		}
		if c.ID == 0 {
			if v := os.Getenv("BANK_ID"); v != "" {
				id, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("env BANK_ID=%q is not a number: %w", v, errUsage)
				}
				c.ID = id
			}
		}
		c.Peers = splitList(*peers)
		if c.Count < 2 || c.ID < 1 || c.ID > c.Count {
			return fmt.Errorf("need --count >= 2 and 1 <= --id <= count (got id %d, count %d): %w", c.ID, c.Count, errUsage)
		}
		if (len(c.Peers) == 0) == (c.Service == "") {
			return fmt.Errorf("give exactly one of --peers and --service: %w", errUsage)
		}
		if c.Interval <= 0 || c.MaxAmount < 1 || c.Initial < 0 {
			return fmt.Errorf("need --interval > 0, --max-amount >= 1, --initial >= 0: %w", errUsage)
		}
		return runHolder(ctx, serve.Logger(stdout, "bank"), c)
	case "query":
		var q queryConfig
		holders := fs.String("holders", "", "comma-separated host:port of every holder's --http")
		fs.StringVar(&q.Service, "service", "", "DNS name resolving to all holders; instead of --holders")
		fs.StringVar(&q.Port, "port", "8080", "HTTP port of holders found through --service")
		fs.IntVar(&q.Count, "count", 0, "expected number of holders (default: what they report); with --service, the name is looked up again until it resolves to this many, up to --settle")
		fs.Int64Var(&q.Initial, "initial", -1, "expected initial balance (default: what they report)")
		fs.DurationVar(&q.Settle, "settle", 5*time.Second, "how long to wait for in-flight money to drain while paused")
		fs.BoolVar(&q.NoPause, "no-pause", false, "read once without pausing transfers (channel figures may be inconsistent)")
		fs.BoolVar(&q.JSON, "json", false, "print the report as JSON")
		fs.BoolVar(&q.Connected, "connected", false, "also fail unless every holder is connected to all its peers")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%v: %w", err, errUsage)
		}
		q.Holders = splitList(*holders)
		if (len(q.Holders) == 0) == (q.Service == "") {
			return fmt.Errorf("give exactly one of --holders and --service: %w", errUsage)
		}
		return runQuery(ctx, stdout, q)
	default:
		return fmt.Errorf("unknown mode %q: %w", mode, errUsage)
	}
}

package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/swarmckpt/swarmckpt/metrics"
)

// daemonFlags are the flags every daemon (coordinator, agent, worker) has.
type daemonFlags struct {
	logFormat string
	metrics   string
}

// register adds --log-format, and --metrics when withMetrics.
func (d *daemonFlags) register(fs *flag.FlagSet, withMetrics bool) {
	fs.StringVar(&d.logFormat, "log-format", "text", "log format on stderr: text (key=value) or json (one object a line)")
	if withMetrics {
		fs.StringVar(&d.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (host:port, e.g. 127.0.0.1:9464; no authentication: keep it on loopback or a monitoring network); empty: off")
	}
}

// apply switches c's logger to the chosen format; call it right after parsing.
func (d *daemonFlags) apply(c *cli) error {
	level := slog.LevelInfo
	if os.Getenv("SWARMCKPT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch d.logFormat {
	case "text":
		c.log = slog.New(slog.NewTextHandler(c.stderr, opts))
	case "json":
		c.log = slog.New(slog.NewJSONHandler(c.stderr, opts))
	default:
		return usagef("--log-format %q: give text or json", d.logFormat)
	}
	return nil
}

// registry returns a new registry with the process and Go runtime collectors and
// serves it at --metrics until ctx ends; nil when --metrics is off.
func (d *daemonFlags) registry(ctx context.Context, c *cli) (*prometheus.Registry, error) {
	if d.metrics == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	addr, err := metrics.Listen(ctx, d.metrics, reg, c.log)
	if err != nil {
		return nil, err
	}
	c.log.Debug("metrics endpoint bound", "addr", addr)
	return reg, nil
}

// serveControlPlane serves, at --metrics, what a control-plane-only process has: the
// embedded etcd's own metrics (etcd_server_has_leader, etcd_server_leader_changes_seen_total,
// etcd_mvcc_db_total_size_in_bytes, ...; etcd registers them on the Prometheus client's
// default registry) with the Go runtime and process ones of that registry. Nothing
// when --metrics is off.
func (d *daemonFlags) serveControlPlane(ctx context.Context, c *cli) error {
	if d.metrics == "" {
		return nil
	}
	_, err := metrics.Listen(ctx, d.metrics, prometheus.DefaultGatherer, c.log)
	return err
}

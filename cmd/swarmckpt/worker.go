package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/pki"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

const workerUsage = `
Usage: swarmckpt worker --node NAME [flags]
       swarmckpt worker watchdog --journal DIR [--log-format text|json]
       swarmckpt worker tls-init --dir DIR --node NAME --ip ADDR [--ip ADDR]... [--dns NAME]...

Runs the worker (data plane) of one Docker node: network lock, freeze, dump, restore and image
transfer of the node's containers (see docs/dataplane.md). One worker per node; it talks
to the node's dockerd, runc and CRIU. Every lock and freeze carries a deadline enforced by
a detached watchdog process that outlives the worker (started with the worker's
--log-format; it logs to <journal>/watchdog.log).

Its endpoint can dump any container of the node (memory and secrets included), restore
image sets as root and remove containers, so every request must carry the cluster's
worker token: --token-file names a file (mode 0600) holding it, the same file on every
node; the node agent reads it with --worker-token-file. Only on a trusted single-user
host may --insecure-no-auth run the endpoint without one. swarmckpt lab writes a token
for its workers and agents.

Its endpoint runs with TLS by default: --tls-ca, --tls-cert and --tls-key are required
(or --insecure-no-tls, which serves plain HTTP: one-host labs and tests;
--insecure-no-auth implies it). It serves HTTPS (TLS 1.3) and sends image sets to
other workers over HTTPS verified by the CA. A renewed certificate and key written over
the files (rename the key first, then the certificate) are served from the next
connection on, without a restart; streams already open finish on the old one. All workers of a cluster run with TLS or
none do; agents then need --worker-tls-ca. The modes whose pages go through CRIU's
page server (post-copy, dump into another node) then run CRIU with its own TLS and the
same files. 'worker tls-init' makes a CA in DIR (once; ca-key.pem stays there, mode
0600) and a certificate for one node naming the addresses others dial.

Examples:
  swarmckpt worker tls-init --dir /etc/swarmckpt/tls --node lab-1 --ip 10.231.1.11 --ip 127.0.0.1
  swarmckpt worker --node lab-1 --token-file /etc/swarmckpt/worker.token --tls-ca /etc/swarmckpt/tls/ca.pem \
      --tls-cert /etc/swarmckpt/tls/lab-1.pem --tls-key /etc/swarmckpt/tls/lab-1-key.pem
  head -c 32 /dev/urandom | xxd -p -c 64 > /etc/swarmckpt/worker.token; chmod 600 /etc/swarmckpt/worker.token
  swarmckpt worker --node lab-1 --docker-host unix:///run/swarmckpt/lab/lab-1/docker.sock \
      --exec-root /run/swarmckpt/lab/lab-1/exec --listen 127.0.0.1:7301 \
      --token-file /etc/swarmckpt/worker.token --insecure-no-tls
  swarmckpt worker --node host --token-file /etc/swarmckpt/worker.token --insecure-no-tls   # one host
`

func runWorker(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 && args[0] == "watchdog" {
		return runWatchdog(ctx, c, args[1:])
	}
	if len(args) > 0 && args[0] == "tls-init" {
		return runTLSInit(c, args[1:])
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	node := fs.String("node", "", "this node's name (required)")
	host := fs.String("docker-host", "", "the node's Docker socket (default: $DOCKER_HOST or /var/run/docker.sock)")
	execRoot := fs.String("exec-root", "/run/docker", "the node's Docker exec-root (runc state is under runtime-runc/moby)")
	dataRoot := fs.String("data-root", "", "the node's Docker data-root (default: ask docker info)")
	listen := fs.String("listen", "127.0.0.1:0", "address of the transfer and local API endpoint")
	journal := fs.String("journal", "", "deadline journal directory (default /run/swarmckpt/worker/<node>/holds)")
	maxHold := fs.Duration("max-hold", 11*time.Minute, "longest deadline accepted for a lock or freeze (the coordinator's scale with the work, at most 10 min by default)")
	addrFile := fs.String("addr-file", "", "write the bound endpoint address to this file once listening")
	tokenFile := fs.String("token-file", "", "file (mode 0600) holding the cluster's worker token, required of every request and sent to other workers")
	noAuth := fs.Bool("insecure-no-auth", false, "run the endpoint without a token (trusted single-user hosts only)")
	tlsCA := fs.String("tls-ca", "", "with --tls-cert and --tls-key: serve HTTPS and reach other workers over HTTPS verified by this CA (the cluster's)")
	tlsCert := fs.String("tls-cert", "", "this node's certificate (SANs: the addresses others dial), signed by --tls-ca")
	tlsKey := fs.String("tls-key", "", "this node's private key (mode 0600); the certificate and key are read again when their files change (rotation without a restart)")
	pageDigests := fs.String("page-digests", worker.PageDigestsAfterRestore, "when the pages a direct transfer's page server receives here are hashed: after-restore (in the background once the restore ran; the set is unverified until then) or on-arrival (while they arrive, on the migration's critical path)")
	noTLS := fs.Bool("insecure-no-tls", false, "serve plain HTTP: image sets (process memory, secrets included) cross the network in clear (one-host labs and tests only)")
	var df daemonFlags
	df.register(fs, true)
	if err := c.parseNoArgs(fs, workerUsage, "worker", args); err != nil {
		return err
	}
	if err := df.apply(c); err != nil {
		return err
	}
	if *node == "" {
		return usagef("--node is required")
	}
	if err := badName(validNodeFlag("--node", *node)); err != nil {
		return err
	}
	var token string
	switch {
	case *tokenFile != "" && *noAuth:
		return usagef("give --token-file or --insecure-no-auth, not both")
	case *tokenFile != "":
		t, err := worker.ReadTokenFile(*tokenFile)
		if err != nil {
			return usagef("--token-file: %v", err)
		}
		token = t
	case !*noAuth:
		return usagef("the worker's endpoint can dump any container of this node: give --token-file FILE (the cluster's worker token, mode 0600, the same on every node), or --insecure-no-auth on a trusted single-user host")
	}
	cfg := worker.DefaultConfig(*node)
	cfg.Token = token
	tlsGiven := *tlsCA != "" || *tlsCert != "" || *tlsKey != ""
	switch {
	case tlsGiven && *noTLS:
		return usagef("give --tls-ca/--tls-cert/--tls-key or --insecure-no-tls, not both")
	case !tlsGiven && !*noTLS && !*noAuth:
		return usagef("the worker sends and receives image sets (process memory, secrets included): give it TLS with --tls-ca, --tls-cert and --tls-key ('swarmckpt worker tls-init' makes them), or --insecure-no-tls where nothing crosses a network others can read")
	}
	if tlsGiven {
		tl, err := worker.LoadTLS(worker.TLSFiles{CA: *tlsCA, Cert: *tlsCert, Key: *tlsKey})
		if err != nil {
			return usagef("%v", err)
		}
		cfg.TLS = tl
	}
	cfg.DockerHost, cfg.ExecRoot, cfg.DataRoot, cfg.Listen, cfg.MaxHold = *host, *execRoot, *dataRoot, *listen, *maxHold
	if *pageDigests != worker.PageDigestsAfterRestore && *pageDigests != worker.PageDigestsOnArrival {
		return usagef("--page-digests %q: use %s or %s", *pageDigests, worker.PageDigestsAfterRestore, worker.PageDigestsOnArrival)
	}
	cfg.PageDigests = *pageDigests
	if *journal != "" {
		cfg.JournalDir = *journal
	}
	cfg.Log = c.log
	argv, err := watchdogArgv(df.logFormat)
	if err != nil {
		return err
	}
	cfg.WatchdogArgv = argv
	reg, err := df.registry(ctx, c)
	if err != nil {
		return err
	}
	if reg != nil {
		if cfg.Metrics, err = metrics.NewWorker(reg); err != nil {
			return err
		}
	}
	w, cli, err := worker.NewDocker(ctx, cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer w.Close()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(w.Addr()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write --addr-file: %w", err)
		}
	}
	fmt.Fprintf(c.stdout, "worker %s listening on %s\n", *node, w.Addr())
	<-ctx.Done()
	return nil
}

func runWatchdog(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("worker watchdog", flag.ContinueOnError)
	journal := fs.String("journal", "", "deadline journal directory to watch (required)")
	interval := fs.Duration("interval", 20*time.Millisecond, "the most a release may lag its deadline (the journal is watched with inotify; without it, polled this often)")
	var df daemonFlags
	df.register(fs, false)
	if err := c.parseNoArgs(fs, workerUsage, "worker watchdog", args); err != nil {
		return err
	}
	if err := df.apply(c); err != nil {
		return err
	}
	if *journal == "" {
		return usagef("--journal is required")
	}
	log := c.log.With("component", "watchdog")
	log.Info("watchdog started", "journal", *journal, "pid", os.Getpid())
	rel := watchdog.Releaser{Lock: &netlock.NFT{}, Freeze: &freezer.Cgroup{}, Log: log}
	return watchdog.Serve(ctx, rel, *journal, *interval)
}

// watchdogArgv is the command the worker starts its watchdog with: this binary, with
// the worker's --log-format, so that its log (<journal>/watchdog.log) has the
// worker's format.
func watchdogArgv(logFormat string) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("worker: find own executable for the watchdog: %w", err)
	}
	return []string{self, "worker", "watchdog", "--journal", "{journal}", "--log-format", logFormat}, nil
}

// runTLSInit makes (or reuses) the CA in --dir and a certificate for --node.
func runTLSInit(c *cli, args []string) error {
	fs := flag.NewFlagSet("worker tls-init", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory of the cluster's CA and the node certificates (created 0700; required)")
	node := fs.String("node", "", "the node whose certificate to make (required)")
	var ips, names listFlag
	fs.Var(&ips, "ip", "an IP address other workers and agents dial this node's worker at (repeat)")
	fs.Var(&names, "dns", "a DNS name they dial it by (repeat)")
	if err := c.parseNoArgs(fs, workerUsage, "worker tls-init", args); err != nil {
		return err
	}
	if *dir == "" || *node == "" {
		return usagef("give --dir and --node NAME")
	}
	if err := badName(validNodeFlag("--node", *node)); err != nil {
		return err
	}
	var addrs []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("--ip %q is not an IP address", s)
		}
		addrs = append(addrs, ip)
	}
	if len(addrs) == 0 && len(names) == 0 {
		return usagef("give the addresses others dial this node at: --ip ADDR (repeat), or --dns NAME")
	}
	caCert, caKey := pki.CAFiles(*dir)
	ca, made, err := pki.OpenCA(*dir, "swarmckpt workers")
	if err != nil {
		return fmt.Errorf("the CA in %s: %w", *dir, err)
	}
	if made {
		fmt.Fprintf(c.stdout, "made the cluster's CA: %s (its key %s stays here: it signs node certificates)\n", caCert, caKey)
	}
	n, err := ca.Issue(*node, addrs, names)
	if err != nil {
		return usagef("%v", err)
	}
	cert, key, err := n.Write(*dir, *node)
	if err != nil {
		return fmt.Errorf("write %s's certificate: %w (remove the old one first to replace it)", *node, err)
	}
	fmt.Fprintf(c.stdout, "made %s's certificate: %s, key %s\nrun: swarmckpt worker --node %s --tls-ca %s --tls-cert %s --tls-key %s ...\n",
		*node, cert, key, *node, caCert, cert, key)
	return nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

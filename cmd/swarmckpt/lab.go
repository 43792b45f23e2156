package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

const labUsage = `Usage: swarmckpt lab <up|down|status|env|deploy|fail|recover> [flags]

A real multi-node Docker Swarm on this machine: each node is its own dockerd in its own
network namespace (hostnames NAME-1..NAME-N, NAME-1 is the manager).

  swarmckpt lab up --nodes 3            create lab "lab" with 3 nodes, load workload images,
                                        start a coordinator and a worker + agent per node
  swarmckpt lab up --coordinators 2     the same with two coordinators (a leader and a
                                        standby; NATS and etcd in a process of their own)
  swarmckpt lab up --external-control-plane
                                        the coordinator(s) on an external 3-member etcd
                                        and 3-server NATS cluster (TLS, auth; Debian's)
  swarmckpt lab status                  show the nodes (exit 1 if a node is down)
  eval "$(swarmckpt lab env)"           point plain docker (and swarmckpt) at the lab
  swarmckpt lab deploy deploy/examples/echo.yml echo
                                        load the images the file needs, deploy it as a stack
  swarmckpt lab fail lab-3              a real failure of node lab-3: its link cut, then its
                                        dockerd, containerd, shims, containers, worker and
                                        agent (and their supervisors) killed with SIGKILL
  swarmckpt lab recover lab-3           bring it back: link up, dockerd, worker and agent
                                        started again; waits until it is back in the swarm
  swarmckpt lab down                    remove everything the lab created (also after a crash)

'lab up' runs each daemon under 'swarmckpt lab supervise -- COMMAND...', which restarts
it whenever it ends (after 300 ms; later when it keeps dying at once), as systemd's
Restart=always does for the units in deploy/systemd (docs/operations.md).`

func runLab(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(c.stdout, labUsage)
		if len(args) == 0 {
			return usagef("lab needs a subcommand: up, down, status, env, deploy, fail or recover")
		}
		return errHelp
	}
	sub, args := args[0], args[1:]
	if !slices.Contains(labSubcommands, sub) {
		return usagef("unknown lab subcommand %q: use up, down, status, env, deploy, fail or recover", sub)
	}
	cfg := lab.DefaultConfig()
	fs := flag.NewFlagSet("lab "+sub, flag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "lab name: prefix of its nodes, namespaces and directories")
	fs.StringVar(&cfg.RunDir, "run-dir", cfg.RunDir, "root of sockets and exec roots")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "root of node data and logs")
	fs.StringVar(&cfg.ImageDir, "images", cfg.ImageDir, "directory of image tars (*.tar) to load onto every node")
	output := fs.String("output", "text", "status output: text or json")
	timeout := fs.Duration("timeout", 2*time.Minute, "deploy: how long to wait for the stack's tasks to run")
	runtime := fs.String("runtime", "auto", "OCI runtime to make every node's default: a path, 'auto' (swarmckpt-runtime next to this binary or in /usr/local/bin, if present) or 'runc'")
	if sub == "up" {
		fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, fmt.Sprintf("number of nodes (1..%d)", lab.MaxNodes))
		fs.BoolVar(&cfg.Daemons, "daemons", cfg.Daemons, "also run swarmckpt's coordinator (embedded NATS and etcd) and a worker and agent per node")
		fs.BoolVar(&cfg.TLS, "tls", cfg.TLS, "run the workers with TLS (CA and certificates made in <data>/coordinator/tls)")
		fs.BoolVar(&cfg.ExternalControlPlane, "external-control-plane", false, "run the coordinators on an external 3-member etcd cluster (TLS, authentication) and 3-server NATS cluster (TLS, per-role users) of Debian's etcd and nats-server on 127.0.0.1, instead of the embedded servers")
		fs.IntVar(&cfg.Coordinators, "coordinators", cfg.Coordinators, fmt.Sprintf("number of coordinators (1..%d); with more than one, a control-plane process runs NATS and etcd and the coordinators elect a leader (the others stand by)", lab.MaxCoordinators))
	}
	pos, err := c.parseArgs(fs, labUsage, args)
	if err != nil {
		return err
	}
	if sub != "deploy" && sub != "supervise" && sub != "fail" && sub != "recover" {
		if err := noArgs("lab "+sub, pos); err != nil {
			return err
		}
	}
	switch sub {
	case "up":
		cfg.Runtime = resolveRuntime(*runtime)
		if cfg.Runtime == "" && *runtime == "auto" {
			c.log.Warn("no swarmckpt-runtime found (looked next to this binary and in /usr/local/bin): nodes run plain runc and swarmckpt cannot restore on this lab; run 'make build' and use bin/swarmckpt, or pass --runtime PATH")
		}
		start := time.Now()
		p, err := lab.Up(ctx, c.log, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "lab %s is up: %d nodes in %.1fs\n", p.Name, len(p.Nodes), time.Since(start).Seconds())
		return printStatus(ctx, c, p, "text")
	case "down":
		if err := lab.Down(ctx, c.log, cfg); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "lab %s removed\n", cfg.Name)
		return nil
	case "status":
		p, err := lab.Load(cfg.RunDir, cfg.Name)
		if err != nil {
			return err
		}
		return printStatus(ctx, c, p, *output)
	case "env":
		p, err := lab.Load(cfg.RunDir, cfg.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "export DOCKER_HOST=%s\n", p.Manager().DockerHost())
		if d := p.Daemons; d != nil {
			fmt.Fprintf(c.stdout, "export SWARMCKPT_NATS=%s\nexport SWARMCKPT_DATA_DIR=%s\n", d.NATSURL(), d.Dir)
		}
		fmt.Fprintf(c.stdout, "# run: eval \"$(swarmckpt lab env --name %s)\"\n", p.Name)
		return nil
	case "supervise":
		if len(pos) == 0 {
			return usagef("usage: swarmckpt lab supervise -- COMMAND [ARG...]")
		}
		return lab.Supervise(ctx, c.log, lab.DefaultRestartPolicy(), pos)
	case "fail", "recover":
		if len(pos) != 1 {
			return usagef("usage: swarmckpt lab %s NODE (a node of the lab, e.g. %s-3)", sub, cfg.Name)
		}
		p, err := lab.Load(cfg.RunDir, cfg.Name)
		if err != nil {
			return err
		}
		if sub == "recover" {
			start := time.Now()
			if err := lab.Recover(ctx, c.log, p, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "node %s recovered in %.1fs: link up, dockerd running and back in the swarm (ready)\n", pos[0], time.Since(start).Seconds())
			return nil
		}
		rep, err := lab.Fail(ctx, c.log, p, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "node %s failed at %s: link cut, %d processes and %d containers killed with SIGKILL\n",
			rep.Node, rep.At.UTC().Format(time.RFC3339Nano), rep.Processes, rep.Containers)
		return nil
	case "deploy":
		if len(pos) != 2 {
			return usagef("usage: swarmckpt lab deploy FILE STACK")
		}
		if err := badName(api.ValidStack(pos[1])); err != nil {
			return err
		}
		p, err := lab.Load(cfg.RunDir, cfg.Name)
		if err != nil {
			return err
		}
		if err := lab.Deploy(ctx, c.log, p, cfg.ImageDir, pos[0], pos[1], *timeout); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "stack %s deployed on lab %s; all services running\n", pos[1], p.Name)
		return nil
	}
	return usagef("unknown lab subcommand %q: use up, down, status, env, deploy, fail or recover", sub)
}

// labSubcommands are the words of 'swarmckpt lab' ("supervise" is how 'lab up' runs
// its daemons).
var labSubcommands = []string{"up", "down", "status", "env", "deploy", "fail", "recover", "supervise"}

func resolveRuntime(flagValue string) string {
	switch flagValue {
	case "runc", "":
		return ""
	case "auto":
		var cands []string
		if exe, err := os.Executable(); err == nil {
			cands = append(cands, filepath.Join(filepath.Dir(exe), "swarmckpt-runtime"))
		}
		cands = append(cands, "/usr/local/bin/swarmckpt-runtime")
		for _, p := range cands {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	return flagValue
}

// printStatus prints the lab's nodes; it fails (exit 1, after printing) when a node's
// engine does not answer, so that scripts can tell a lab left behind by a reboot or an
// ended session from one that runs.
func printStatus(ctx context.Context, c *cli, p lab.Plan, output string) error {
	st := lab.Status(ctx, p)
	var down []string
	for _, s := range st {
		if !s.Up {
			down = append(down, s.Name)
		}
	}
	if output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"name": p.Name, "subnet": fmt.Sprintf("10.231.%d.0/24", p.Subnet), "runtime": p.Runtime, "nodes": st}); err != nil {
			return err
		}
		return labDown(p.Name, down)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tROLE\tENGINE\tSWARM\tCONTAINERS\tDOCKER_HOST")
	for _, s := range st {
		state := s.SwarmState
		if !s.Up {
			state = "DOWN: " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Addr, s.Role, s.Engine, state, s.Containers, s.DockerHost())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d := p.Daemons; d != nil {
		tlsNote := ""
		if d.TLS {
			caCert, _ := pki.CAFiles(d.TLSDir())
			tlsNote = ", TLS with the CA " + caCert
		}
		if x := d.External; x != nil {
			fmt.Fprintf(c.stdout, "daemons: external etcd cluster %s (TLS, user %s, password in %s) and NATS cluster %s (TLS, users in %s); %d coordinator(s) (memberlist %s; 'swarmckpt status' shows which leads); a worker and an agent per node (worker token in %s%s); data and logs in %s\n",
				strings.Join(x.EtcdEndpoints(), ","), lab.EtcdUser, x.EtcdPasswordFile(), d.NATSURL(), filepath.Join(d.Dir, "nats-users"), max(d.Coordinators, 1),
				strings.Join(coordinatorGossips(p), ", "), filepath.Join(d.Dir, "worker.token"), tlsNote, d.Dir)
		} else if d.Coordinators > 1 {
			fmt.Fprintf(c.stdout, "daemons: a control-plane process with NATS %s and etcd 127.0.0.1:%d; %d coordinators electing a leader (memberlist %s; 'swarmckpt status' shows which leads); a worker and an agent per node (worker token in %s%s); data and logs in %s\n",
				d.NATSURL(), d.EtcdPort, d.Coordinators, strings.Join(coordinatorGossips(p), ", "), filepath.Join(d.Dir, "worker.token"), tlsNote, d.Dir)
		} else {
			fmt.Fprintf(c.stdout, "daemons: coordinator with embedded NATS %s, etcd 127.0.0.1:%d and memberlist 127.0.0.1:%d; a worker and an agent per node (worker token in %s%s); data and logs in %s\n",
				d.NATSURL(), d.EtcdPort, d.GossipPort, filepath.Join(d.Dir, "worker.token"), tlsNote, d.Dir)
		}
	}
	return labDown(p.Name, down)
}

// labDown is status's error for the nodes whose engine does not answer (nil: none).
func labDown(name string, down []string) error {
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("lab %s: node(s) %s not running (their engines do not answer); after `swarmckpt lab fail` bring a node back with `swarmckpt lab recover --name %s NODE`, else remove the lab with `swarmckpt lab down --name %s` and start it again with `swarmckpt lab up`",
		name, strings.Join(down, ", "), name, name)
}

// coordinatorGossips are the memberlist addresses of lab p's coordinators.
func coordinatorGossips(p lab.Plan) []string {
	var out []string
	for i := 1; i <= max(p.Daemons.Coordinators, 1); i++ {
		out = append(out, p.Daemons.CoordinatorGossip(p, i))
	}
	return out
}

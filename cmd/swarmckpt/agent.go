package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/members"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

const agentUsage = `
Usage: swarmckpt agent --node NAME --worker HOST:PORT [flags]

Runs one node's agent (package worker/agent) next to its worker ('swarmckpt worker', whose local
API address is --worker, or read from --worker-addr-file, and whose token is read from
--worker-token-file; with --worker-tls-ca when the worker runs with TLS). It connects to the coordinator's NATS, announces the node
(heartbeats), runs the container side of every snapshot algorithm, and serves image
transfers and restores. Its NATS user is its node's own ("agent.NODE", derived from
<data-dir>/nats-users/agent.key when this host has it, else --nats-user-file from
'swarmckpt coordinator credentials'), with the coordinator's CA (--nats-ca, default
<data-dir>/etcd-tls/ca.pem); its memberlist key is --gossip-key-file (default
<data-dir>/gossip.key). --metrics ADDR serves its Prometheus metrics (holds and operations,
docs/operations.md) at http://ADDR/metrics (a port of its own, not the worker's).

Examples:
  swarmckpt agent --node lab-1 --worker 127.0.0.1:7301 --worker-token-file /etc/swarmckpt/worker.token
  swarmckpt agent --node lab-2 --worker-addr-file /run/swarmckpt/w2.addr \
      --worker-token-file /etc/swarmckpt/worker.token \
      --nats nats://10.0.0.5:14222 --nats-user-file /etc/swarmckpt/nats-agent.user --nats-ca /etc/swarmckpt/nats-ca.pem
`

func runAgent(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, true)
	node := fs.String("node", "", "this node's name as the swarm knows it (required)")
	waddr := fs.String("worker", "", "the worker's local API address host:port")
	waddrFile := fs.String("worker-addr-file", "", "file holding the worker's address (its --addr-file)")
	wtokenFile := fs.String("worker-token-file", "", "file holding the worker's token (its --token-file)")
	wtlsCA := fs.String("worker-tls-ca", "", "the cluster's CA file, when the worker runs with TLS (its --tls-ca)")
	hold := fs.Duration("hold", 11*time.Minute, "longest a lock or freeze may be held before the worker's watchdog releases it (caps the coordinator's deadlines, which scale with the work)")
	stateDir := fs.String("state-dir", "", "where the agent keeps its container roles' records (default <data-dir>/agent-<node>)")
	gossipJoin := fs.String("gossip-join", "", "the coordinators' memberlist addresses to join (their --gossip), comma-separated; one reachable is enough")
	gossipBind := fs.String("gossip-bind", "127.0.0.1:0", "this agent's memberlist bind address")
	gossipKey := fs.String("gossip-key-file", "", "the coordinator's memberlist key (its <data-dir>/gossip.key; default that file when it exists)")
	var df daemonFlags
	df.register(fs, true)
	if err := c.parseNoArgs(fs, agentUsage, "agent", args); err != nil {
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
	addr := *waddr
	if addr == "" && *waddrFile != "" {
		b, err := os.ReadFile(*waddrFile)
		if err != nil {
			return fmt.Errorf("--worker-addr-file: %w", err)
		}
		addr = strings.TrimSpace(string(b))
	}
	if addr == "" {
		return usagef("give the worker's address with --worker or --worker-addr-file")
	}
	if *stateDir == "" {
		*stateDir = filepath.Join(nf.dataDir, "agent-"+*node)
	}
	var wtoken string
	if *wtokenFile != "" {
		t, err := worker.ReadTokenFile(*wtokenFile)
		if err != nil {
			return usagef("--worker-token-file: %v", err)
		}
		wtoken = t
	}
	wc := &worker.Client{Addr: addr, Token: wtoken}
	if *wtlsCA != "" {
		pool, err := worker.LoadCA(*wtlsCA)
		if err != nil {
			return usagef("--worker-tls-ca: %v", err)
		}
		wc.TLS = worker.ClientTLS(pool)
	}
	ninfo, err := wc.Info(ctx)
	if err != nil {
		return fmt.Errorf("agent: worker info: %w (is 'swarmckpt worker' running on this node?)", err)
	}
	ncfg, err := nf.config(c, "agent-"+*node, natsauth.RoleAgent, *node)
	if err != nil {
		return err
	}
	tr, err := natsbus.Connect(ctx, ncfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	reg, err := df.registry(ctx, c)
	if err != nil {
		return err
	}
	var am *metrics.Agent
	if reg != nil {
		if am, err = metrics.NewAgent(reg); err != nil {
			return err
		}
	}
	a, err := agent.New(agent.Config{Node: *node, Bus: tr, Worker: wc.Roles(), NodeInfo: ninfo, Hold: *hold,
		Algorithms: registry.Lookup, StateDir: *stateDir, Info: workerInfo(ninfo), Metrics: am, Log: c.log})
	if err != nil {
		return err
	}
	if *gossipJoin != "" {
		info := workerInfo(ninfo)
		// One name per incarnation (members.Superseded): a restarted agent joins before
		// memberlist declares its killed predecessor dead.
		member := fmt.Sprintf("worker/%s/%d", *node, time.Now().UnixNano())
		var key []byte
		if *gossipKey == "" && fileExists(members.KeyPath(nf.dataDir)) {
			*gossipKey = members.KeyPath(nf.dataDir)
		}
		if *gossipKey != "" {
			if key, err = members.ReadKey(*gossipKey); err != nil {
				return usagef("--gossip-key-file: %v", err)
			}
		}
		cl, err := members.Start(members.Config{Name: member, Bind: *gossipBind, Join: strings.Split(*gossipJoin, ","), Key: key,
			Meta: members.Meta{Node: *node, Role: "worker", WorkerAddr: info.Address, CRIUVersion: info.CRIUVersion, Features: info.Features},
			Log:  c.log})
		if err != nil {
			return err
		}
		defer cl.Leave(2 * time.Second)
	}
	fmt.Fprintf(c.stdout, "agent %s: worker %s, NATS %s\n", *node, addr, nf.url)
	return a.Run(ctx)
}

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
	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/members"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent/workerexec"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
)

const defaultDataDir = "/var/lib/swarmckpt/coordinator"

const coordinatorUsage = `
Usage: swarmckpt coordinator [flags]
       swarmckpt coordinator agent --node NAME --worker HOST:PORT [flags]

Runs the coordinator: it resolves stacks through a swarm manager's Docker API, drives
one algorithm instance per snapshot, records snapshots in etcd and serves the CLI over
NATS. With no --nats and no --etcd it runs both servers inside its own process, on
loopback, persisting under --data-dir (mode 0700); the NATS token it generates is
written to <data-dir>/nats.token (mode 0600): node agents and the CLI read it from there.
The embedded etcd serves TLS only and requires a client certificate of the
coordinator's own CA (<data-dir>/etcd-tls, 0700, files 0600; only the coordinator
talks to etcd). It refuses to start when etcd's membership holds a member it did not
create (recorded in <data-dir>/etcd-members.json); --etcd-force-new-cluster, given
once, removes such members and keeps the data. --insecure-no-auth turns the NATS
token and etcd's TLS off.

An external etcd (--etcd) with TLS takes https:// endpoints, --etcd-cacert, and for
client-certificate auth --etcd-cert and --etcd-key.

'coordinator agent' runs the control-plane agent of one node next to its worker
('swarmckpt worker'): it takes part in snapshots (lock, freeze, dump through the
worker's local API) and serves transfers and restores.

The coordinator applies the stacks' swarmckpt.* service labels (deploy.labels): it
watches the manager's service events, takes scheduled snapshots and removes those that
retention lets go (docs/policy.md; 'swarmckpt policy' shows what it applies).
--policy=false leaves the labels unapplied.

Examples:
  swarmckpt coordinator --docker unix:///run/swarmckpt/lab/lab-1/docker.sock
  swarmckpt coordinator --nats nats://10.0.0.5:4222 --nats-token-file /etc/swarmckpt/token \
      --etcd https://10.0.0.5:2379 --etcd-cacert /etc/etcd/ca.pem \
      --etcd-cert /etc/swarmckpt/etcd-client.pem --etcd-key /etc/swarmckpt/etcd-client-key.pem \
      --docker unix:///var/run/docker.sock
  swarmckpt coordinator agent --node lab-2 --worker 127.0.0.1:7302 --worker-token-file /etc/swarmckpt/worker.token
`

// natsFlags are the control-plane connection flags shared by every command.
type natsFlags struct {
	url, token, tokenFile, user, password, ca, cert, key, dataDir string
}

func (n *natsFlags) register(fs *flag.FlagSet, defaultURL bool) {
	def, dir := "", defaultDataDir
	if defaultURL {
		// User commands and agents: $SWARMCKPT_NATS and $SWARMCKPT_DATA_DIR (what
		// 'swarmckpt lab env' exports) override the built-in defaults.
		def = fmt.Sprintf("nats://127.0.0.1:%d", embedded.DefaultNATSPort)
		if v := os.Getenv("SWARMCKPT_NATS"); v != "" {
			def = v
		}
		if v := os.Getenv("SWARMCKPT_DATA_DIR"); v != "" {
			dir = v
		}
	}
	fs.StringVar(&n.url, "nats", def, "NATS URL of the control plane ($SWARMCKPT_NATS)")
	fs.StringVar(&n.token, "nats-token", "", "NATS token")
	fs.StringVar(&n.tokenFile, "nats-token-file", "", "file holding the NATS token (default <data-dir>/nats.token when it exists)")
	fs.StringVar(&n.user, "nats-user", "", "NATS user name")
	fs.StringVar(&n.password, "nats-password", "", "NATS password (prefer $SWARMCKPT_NATS_PASSWORD)")
	fs.StringVar(&n.ca, "nats-ca", "", "CA certificate to verify the NATS server (turns TLS on)")
	fs.StringVar(&n.cert, "nats-cert", "", "client certificate for NATS (TLS)")
	fs.StringVar(&n.key, "nats-key", "", "client key for NATS (TLS)")
	fs.StringVar(&n.dataDir, "data-dir", dir, "coordinator data directory (etcd data, NATS token; $SWARMCKPT_DATA_DIR)")
}

func (n *natsFlags) config(c *cli, name string) natsbus.Config {
	cfg := natsbus.Config{URL: n.url, Token: n.token, TokenFile: n.tokenFile, User: n.user, Password: n.password,
		CAFile: n.ca, CertFile: n.cert, KeyFile: n.key, Name: name, Log: c.log}
	if cfg.Password == "" {
		cfg.Password = os.Getenv("SWARMCKPT_NATS_PASSWORD")
	}
	if cfg.Token == "" && cfg.TokenFile == "" && cfg.User == "" {
		if _, err := os.Stat(embedded.TokenPath(n.dataDir)); err == nil {
			cfg.TokenFile = embedded.TokenPath(n.dataDir)
		}
	}
	return cfg
}

func runCoordinator(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 && args[0] == "agent" {
		return runAgent(ctx, c, args[1:])
	}
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, false)
	etcdEPs := fs.String("etcd", "", "etcd endpoints, comma-separated (default: embedded etcd)")
	etcdCA := fs.String("etcd-cacert", "", "external etcd: CA certificate that verifies its server certificate (https:// endpoints)")
	etcdCert := fs.String("etcd-cert", "", "external etcd: client certificate (with --etcd-key)")
	etcdKey := fs.String("etcd-key", "", "external etcd: client key (with --etcd-cert)")
	listen := fs.String("listen", "127.0.0.1", "address the embedded NATS and etcd client port bind to")
	natsPort := fs.Int("nats-port", embedded.DefaultNATSPort, "embedded NATS client port")
	etcdPort := fs.Int("etcd-port", embedded.DefaultEtcdPort, "embedded etcd client port")
	etcdPeer := fs.Int("etcd-peer-port", embedded.DefaultEtcdPeerPort, "embedded etcd peer port (on 127.0.0.1)")
	forceNew := fs.Bool("etcd-force-new-cluster", false, "embedded etcd: remove every member this coordinator did not create, keeping the data (recovery; once)")
	noAuth := fs.Bool("insecure-no-auth", false, "embedded NATS without a token and embedded etcd without TLS (trusted single-user hosts only)")
	docker := fs.String("docker", "", "Docker API of a swarm manager (default $DOCKER_HOST or the local socket)")
	name := fs.String("name", "", "this coordinator's name (default the host name)")
	timeout := fs.Duration("snapshot-timeout", 2*time.Minute, "longest a snapshot may take before it is aborted")
	gossip := fs.String("gossip", "", "memberlist bind address host:port (e.g. 127.0.0.1:17946); agents join it with --gossip-join; empty: heartbeats only")
	policies := fs.Bool("policy", true, "apply the stacks' swarmckpt.* service labels: scheduled snapshots and retention (docs/policy.md); --policy=false ignores them")
	err := c.parseNoArgs(fs, coordinatorUsage, "coordinator", args)
	if err != nil {
		return err
	}
	if *name == "" {
		h, _ := os.Hostname()
		*name = "coordinator-" + h
	}
	if err := os.MkdirAll(nf.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", nf.dataDir, err)
	}
	var endpoints []string
	if *etcdEPs != "" {
		endpoints = strings.Split(*etcdEPs, ",")
		if *forceNew {
			return usagef("--etcd-force-new-cluster is for the embedded etcd; an external etcd is recovered with its own --force-new-cluster")
		}
	} else if *etcdCA != "" || *etcdCert != "" || *etcdKey != "" {
		return usagef("--etcd-cacert, --etcd-cert and --etcd-key are for an external etcd (--etcd); the embedded one uses its own credentials in %s",
			filepath.Dir(embedded.EtcdCredentialsPath(nf.dataDir).CA))
	}
	etcdCfg := etcdstore.Config{CAFile: *etcdCA, CertFile: *etcdCert, KeyFile: *etcdKey}
	var srv *embedded.Servers
	if nf.url == "" || len(endpoints) == 0 {
		cfg := embedded.DefaultConfig(nf.dataDir)
		cfg.Host, cfg.NATSPort, cfg.EtcdPort, cfg.EtcdPeerPort, cfg.NoAuth, cfg.Log = *listen, *natsPort, *etcdPort, *etcdPeer, *noAuth, c.log
		cfg.ForceNewCluster = *forceNew
		srv, err = embedded.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer srv.Close()
		if nf.url == "" {
			nf.url = srv.NATSURL()
			if srv.Token() != "" {
				nf.token, nf.tokenFile = srv.Token(), ""
			}
		}
		if len(endpoints) == 0 {
			endpoints = srv.EtcdEndpoints()
			if cr := srv.EtcdCredentials(); cr != nil {
				etcdCfg.CAFile, etcdCfg.CertFile, etcdCfg.KeyFile = cr.CA, cr.Cert, cr.Key
			}
		}
	}
	etcdCfg.Endpoints = endpoints
	tr, err := natsbus.Connect(ctx, nf.config(c, *name))
	if err != nil {
		return err
	}
	defer tr.Close()
	st, err := etcdstore.Open(ctx, etcdCfg)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := stack.NewDocker(*docker)
	if err != nil {
		return err
	}
	defer res.Close()
	svc, err := coordinator.New(coordinator.Config{Name: *name, Bus: tr, Store: st, Resolver: res,
		Algorithms: registry.Lookup, SnapshotTimeout: *timeout, Verify: coordinator.AgentVerifier(tr, 2*time.Minute), Stopper: res,
		Policies: policySource(*policies, res), Log: c.log})
	if err != nil {
		return err
	}
	svc.SetRestorer(&restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: tr, AddrOf: svc.WorkerAddr}, Events: svc.Emit})
	// A stack restored in exact mode runs as standalone containers the manager does not
	// see: the workers list them (restore, snapshot and migrate it again).
	res.SetStandalone(svc.StandaloneContainers)
	if *gossip != "" {
		cl, err := members.Start(members.Config{Name: "coordinator/" + *name, Bind: *gossip,
			Meta: members.Meta{Node: *name, Role: "coordinator"}, Log: c.log})
		if err != nil {
			return err
		}
		defer cl.Leave(2 * time.Second)
		go func() {
			for ev := range cl.Events() {
				if ev.Kind != members.Leave || ev.Meta.Role != "worker" {
					continue
				}
				if members.Superseded(cl.Members(), ev) {
					c.log.Info("an earlier agent of the node left; a newer one is alive", "node", ev.Meta.Node, "member", ev.Name)
					continue
				}
				svc.NodeFailed(ev.Meta.Node, "memberlist: its agent left or stopped answering probes")
			}
		}()
		fmt.Fprintf(c.stdout, "gossip (memberlist) on %s\n", cl.Addr())
	}
	fmt.Fprintf(c.stdout, "coordinator %s: NATS %s, etcd %s, data %s\n", *name, nf.url, strings.Join(endpoints, ","), nf.dataDir)
	if srv != nil && *etcdEPs == "" && srv.EtcdCredentials() != nil {
		cr := srv.EtcdCredentials()
		fmt.Fprintf(c.stdout, "etcd: TLS with client certificates (etcdctl --cacert %s --cert %s --key %s)\n", cr.CA, cr.Cert, cr.Key)
	}
	if srv != nil && srv.Token() != "" {
		fmt.Fprintf(c.stdout, "NATS token: %s (workers: --nats-token-file %s)\n", embedded.TokenPath(nf.dataDir), embedded.TokenPath(nf.dataDir))
	}
	return svc.Run(ctx)
}

// policySource is the coordinator's policy source: the swarm manager's services
// (nil with --policy=false).
func policySource(on bool, res *stack.Docker) coordinator.PolicySource {
	if !on {
		return nil
	}
	return res
}

const agentUsage = `
Usage: swarmckpt coordinator agent --node NAME --worker HOST:PORT [flags]

Runs one node's control-plane agent next to its worker ('swarmckpt worker', whose local
API address is --worker, or read from --worker-addr-file, and whose token is read from
--worker-token-file; with --worker-tls-ca when the worker runs with TLS). It connects to the coordinator's NATS, announces the node
(heartbeats), runs the container side of every snapshot algorithm, and serves image
transfers and restores.

Examples:
  swarmckpt coordinator agent --node lab-1 --worker 127.0.0.1:7301 --worker-token-file /etc/swarmckpt/worker.token
  swarmckpt coordinator agent --node lab-2 --worker-addr-file /run/swarmckpt/w2.addr \
      --worker-token-file /etc/swarmckpt/worker.token \
      --nats nats://127.0.0.1:14222 --nats-token-file /var/lib/swarmckpt/coordinator/nats.token
`

func runAgent(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("coordinator agent", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, true)
	node := fs.String("node", "", "this node's name as the swarm knows it (required)")
	waddr := fs.String("worker", "", "the worker's local API address host:port")
	waddrFile := fs.String("worker-addr-file", "", "file holding the worker's address (its --addr-file)")
	wtokenFile := fs.String("worker-token-file", "", "file holding the worker's token (its --token-file)")
	wtlsCA := fs.String("worker-tls-ca", "", "the cluster's CA file, when the worker runs with TLS (its --tls-ca)")
	hold := fs.Duration("hold", 3*time.Minute, "longest a lock or freeze may be held before the worker's watchdog releases it")
	stateDir := fs.String("state-dir", "", "where the agent keeps its container roles' records (default <data-dir>/agent-<node>)")
	gossipJoin := fs.String("gossip-join", "", "the coordinator's memberlist address to join (its --gossip)")
	gossipBind := fs.String("gossip-bind", "127.0.0.1:0", "this agent's memberlist bind address")
	if err := c.parseNoArgs(fs, agentUsage, "coordinator agent", args); err != nil {
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
	ex, err := workerexec.New(ctx, wc, *hold)
	if err != nil {
		return err
	}
	ex.Log = c.log
	tr, err := natsbus.Connect(ctx, nf.config(c, "agent-"+*node))
	if err != nil {
		return err
	}
	defer tr.Close()
	a, err := nodeagent.New(nodeagent.Config{Node: *node, Bus: tr, Exec: ex, Restorer: ex, Algorithms: registry.Lookup, StateDir: *stateDir,
		Info: workerInfo(ex.Info), Log: c.log})
	if err != nil {
		return err
	}
	if *gossipJoin != "" {
		info := workerInfo(ex.Info)
		// One name per incarnation (members.Superseded): a restarted agent joins before
		// memberlist declares its killed predecessor dead.
		member := fmt.Sprintf("worker/%s/%d", *node, time.Now().UnixNano())
		cl, err := members.Start(members.Config{Name: member, Bind: *gossipBind, Join: []string{*gossipJoin},
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

func workerInfo(i worker.NodeInfo) (w store.Worker) {
	w.Node, w.Address, w.CRIUVersion = i.Node, i.Addr, i.CRIUVersion
	if i.Kernel != "" {
		w.Features = append(w.Features, "kernel="+i.Kernel)
	}
	if i.PostCopy.OK {
		w.Features = append(w.Features, "post-copy")
	}
	if i.PreCopy.OK {
		w.Features = append(w.Features, "pre-copy")
	}
	return w
}

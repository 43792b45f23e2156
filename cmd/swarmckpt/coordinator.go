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
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/holdtime"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

const defaultDataDir = "/var/lib/swarmckpt/coordinator"

const coordinatorUsage = `
Usage: swarmckpt coordinator [flags]

Runs the coordinator: it resolves stacks through a swarm manager's Docker API, drives
one algorithm instance per snapshot, records snapshots in etcd and serves the CLI over
NATS. With no --nats and no --etcd it runs both servers inside its own process, on
loopback, persisting under --data-dir (mode 0700). The embedded NATS serves TLS only
(certificate of the coordinator's own CA, <data-dir>/etcd-tls/ca.pem) and knows one
user per role, with NATS permissions from the subject table: the coordinator, the CLI
(<data-dir>/nats-users/cli.user) and one per node agent ("agent.NODE", password derived
from <data-dir>/nats-users/agent.key; 'swarmckpt coordinator credentials --node NAME'
writes a node's file). An agent may publish only its replies, heartbeats, results and
markers: no coordinator command. Commands and agents run with --data-dir find their
role's credentials and the CA there; on other hosts give --nats-user-file and --nats-ca.
The embedded etcd serves TLS only and requires a client certificate of the
coordinator's own CA (<data-dir>/etcd-tls, 0700, files 0600; only the coordinator
talks to etcd). It refuses to start when etcd's membership holds a member it did not
create (recorded in <data-dir>/etcd-members.json); --etcd-force-new-cluster, given
once, removes such members and keeps the data. --insecure-no-auth turns NATS's TLS and
users, etcd's TLS and the memberlist encryption off.

An external etcd (--etcd) with TLS takes https:// endpoints, --etcd-cacert, and for
client-certificate auth --etcd-cert and --etcd-key; for user/password auth --etcd-user
and the password in $SWARMCKPT_ETCD_PASSWORD or --etcd-password-file.

With --gossip, memberlist traffic is encrypted (AES-GCM) with <data-dir>/gossip.key
(made on first start, 0600): agents join with the same key (--gossip-key-file, default
<data-dir>/gossip.key); a node without it cannot join.

Several coordinators may share one etcd and NATS (high availability): they elect a
leader through etcd; the others stand by. Only the leader answers the CLI, takes
snapshots and applies policies. When it dies, a standby leads --leader-ttl (5s) after
its last lease renewal and first finishes or aborts what the dead leader left running
(nothing stays frozen or locked); a leader cut off from etcd for that long stops
(exit 1) so that its supervisor restarts it as a standby. --control-plane-only runs
just the embedded NATS and etcd for such coordinators (each then runs with --nats,
--nats-user-file <data-dir>/nats-users/coordinator.user, --nats-ca, --etcd and the
embedded etcd's client certificate, as printed at start). 'swarmckpt status' shows which coordinator leads.

Each node runs its agent with 'swarmckpt agent' ('swarmckpt coordinator agent' is a
deprecated alias of it).

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
  swarmckpt coordinator credentials --node lab-2 --out /tmp/agent-lab-2.user   # copy to lab-2, 0600
  swarmckpt coordinator --control-plane-only --data-dir /var/lib/swarmckpt/cp
`

// natsFlags are the control-plane connection flags shared by every command.
type natsFlags struct {
	url, token, tokenFile, user, password, userFile, ca, cert, key, dataDir string
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
	fs.StringVar(&n.tokenFile, "nats-token-file", "", "file holding the NATS token (external NATS servers)")
	fs.StringVar(&n.user, "nats-user", "", "NATS user name")
	fs.StringVar(&n.password, "nats-password", "", "NATS password (prefer $SWARMCKPT_NATS_PASSWORD)")
	fs.StringVar(&n.userFile, "nats-user-file", "", "file holding \"user:password\" for NATS (default: this role's credentials in <data-dir>/nats-users when they exist)")
	fs.StringVar(&n.ca, "nats-ca", "", "CA certificate to verify the NATS server (turns TLS on; default <data-dir>/etcd-tls/ca.pem when the data directory has the embedded NATS's users)")
	fs.StringVar(&n.cert, "nats-cert", "", "client certificate for NATS (TLS)")
	fs.StringVar(&n.key, "nats-key", "", "client key for NATS (TLS)")
	fs.StringVar(&n.dataDir, "data-dir", dir, "coordinator data directory (etcd data, NATS credentials and CA; $SWARMCKPT_DATA_DIR)")
}

// config is the NATS connection of role (node: an agent's). Without credential
// flags, role's credentials in the data directory are used when they exist (the
// embedded coordinator's, natsauth), and with them its CA.
func (n *natsFlags) config(c *cli, name string, role natsauth.Role, node string) (natsbus.Config, error) {
	cfg := natsbus.Config{URL: n.url, Token: n.token, TokenFile: n.tokenFile, User: n.user, Password: n.password, UserFile: n.userFile,
		CAFile: n.ca, CertFile: n.cert, KeyFile: n.key, Name: name, Log: c.log}
	if cfg.Password == "" {
		cfg.Password = os.Getenv("SWARMCKPT_NATS_PASSWORD")
	}
	dir := natsauth.Dir(n.dataDir)
	if _, err := os.Stat(dir); err != nil || role == natsauth.RoleCoordinator {
		// The coordinator gets its credentials from its embedded NATS, or flags.
		return cfg, nil
	}
	if cfg.Token == "" && cfg.TokenFile == "" && cfg.User == "" && cfg.UserFile == "" {
		switch role {
		case natsauth.RoleAgent:
			cr, err := natsauth.AgentCredentials(dir, node)
			if err != nil {
				return cfg, fmt.Errorf("NATS credentials of agent %s from %s: %w (or give --nats-user-file)", node, dir, err)
			}
			cfg.User, cfg.Password = cr.User, cr.Password
		default:
			if f := natsauth.UserFile(dir, role); fileExists(f) {
				cfg.UserFile = f
			}
		}
	}
	if cfg.CAFile == "" && cfg.CertFile == "" && fileExists(embedded.NATSCAPath(n.dataDir)) {
		cfg.CAFile = embedded.NATSCAPath(n.dataDir)
	}
	return cfg, nil
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

func runCoordinator(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 && args[0] == "agent" {
		fmt.Fprintln(c.stderr, "swarmckpt: 'coordinator agent' is deprecated; run 'swarmckpt agent' (same flags)")
		return runAgent(ctx, c, args[1:])
	}
	if len(args) > 0 && args[0] == "credentials" {
		return runCredentials(c, args[1:])
	}
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, false)
	etcdEPs := fs.String("etcd", "", "etcd endpoints, comma-separated (default: embedded etcd)")
	etcdCA := fs.String("etcd-cacert", "", "external etcd: CA certificate that verifies its server certificate (https:// endpoints)")
	etcdCert := fs.String("etcd-cert", "", "external etcd: client certificate (with --etcd-key)")
	etcdKey := fs.String("etcd-key", "", "external etcd: client key (with --etcd-cert)")
	etcdUser := fs.String("etcd-user", "", "external etcd: user name for etcd's authentication (password from $SWARMCKPT_ETCD_PASSWORD or --etcd-password-file)")
	etcdPassFile := fs.String("etcd-password-file", "", "external etcd: file holding the password of --etcd-user (first line)")
	listen := fs.String("listen", "127.0.0.1", "address the embedded NATS and etcd client port bind to")
	natsPort := fs.Int("nats-port", embedded.DefaultNATSPort, "embedded NATS client port")
	etcdPort := fs.Int("etcd-port", embedded.DefaultEtcdPort, "embedded etcd client port")
	etcdPeer := fs.Int("etcd-peer-port", embedded.DefaultEtcdPeerPort, "embedded etcd peer port (on 127.0.0.1)")
	forceNew := fs.Bool("etcd-force-new-cluster", false, "embedded etcd: remove every member this coordinator did not create, keeping the data (recovery; once)")
	noAuth := fs.Bool("insecure-no-auth", false, "embedded NATS without TLS and users, embedded etcd without TLS, memberlist unencrypted (trusted single-user hosts only)")
	docker := fs.String("docker", "", "Docker API of a swarm manager (default $DOCKER_HOST or the local socket)")
	name := fs.String("name", "", "this coordinator's name (default the host name)")
	timeout := fs.Duration("snapshot-timeout", 2*time.Minute, "longest a snapshot may take before it is aborted, when its work is unknown (the stack's first snapshot); otherwise the hold budget applies")
	holdBase := fs.Duration("hold-base", holdtime.Default().Base, "hold budget: fixed part of a snapshot's timeout and its containers' hold deadlines")
	holdFloor := fs.Int64("hold-floor", holdtime.Default().Floor>>20, "hold budget: slowest rate, in MiB/s, images are assumed to be written or streamed at")
	holdMax := fs.Duration("hold-max", holdtime.Default().Max, "hold budget: longest timeout it gives (keep the agents' --hold and the workers' --max-hold above it)")
	prepWait := fs.Duration("migrate-prepare-wait", restore.DefaultPrepareWait, "a partial migration waits up to this long, before it freezes anything, for the network keepers of its targets and of the nodes its containers leave (less downtime; a rollback's put-back finds its networks: docs/restore.md), a restore, before it stops the stack, for its targets' (a keeper started after the stop may take a stopped container's address), and a swarm-mode move through the drain hold (migrate --mode swarm, node drain), before it stops anything, for the keepers of the nodes that may take the replacements (docs/drain.md); 0: not waited for (they start during the dump)")
	gossip := fs.String("gossip", "", "memberlist bind address host:port (e.g. 127.0.0.1:17946); agents join it with --gossip-join; empty: heartbeats only")
	gossipJoin := fs.String("gossip-join", "", "other coordinators' memberlist addresses to join, comma-separated (several coordinators; unreachable ones are skipped)")
	leaderTTL := fs.Duration("leader-ttl", etcdstore.DefaultLeaderTTL, "lease of this coordinator's leadership: a standby takes over this long after the leader died (whole seconds)")
	cpOnly := fs.Bool("control-plane-only", false, "run only the embedded NATS and etcd, no coordinator: several coordinators share them with --nats and --etcd")
	policies := fs.Bool("policy", true, "apply the stacks' swarmckpt.* service labels: scheduled snapshots and retention (docs/policy.md); --policy=false ignores them")
	var df daemonFlags
	df.register(fs, true)
	err := c.parseNoArgs(fs, coordinatorUsage, "coordinator", args)
	if err != nil {
		return err
	}
	if err := df.apply(c); err != nil {
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
	} else if *etcdCA != "" || *etcdCert != "" || *etcdKey != "" || *etcdUser != "" || *etcdPassFile != "" {
		return usagef("--etcd-cacert, --etcd-cert, --etcd-key, --etcd-user and --etcd-password-file are for an external etcd (--etcd); the embedded one uses its own credentials in %s",
			filepath.Dir(embedded.EtcdCredentialsPath(nf.dataDir).CA))
	}
	etcdCfg := etcdstore.Config{CAFile: *etcdCA, CertFile: *etcdCert, KeyFile: *etcdKey}
	if etcdCfg.Username, etcdCfg.Password, err = etcdUserPassword(*etcdUser, *etcdPassFile); err != nil {
		return err
	}
	if *cpOnly && (nf.url != "" || len(endpoints) > 0) {
		return usagef("--control-plane-only runs the embedded NATS and etcd: give neither --nats nor --etcd")
	}
	var srv *embedded.Servers
	if nf.url == "" || len(endpoints) == 0 {
		cfg := embedded.DefaultConfig(nf.dataDir)
		cfg.Host, cfg.NATSPort, cfg.EtcdPort, cfg.EtcdPeerPort, cfg.NoAuth, cfg.Log = *listen, *natsPort, *etcdPort, *etcdPeer, *noAuth, c.log
		cfg.ForceNewCluster = *forceNew
		cfg.NoNATS = nf.url != "" // an external NATS: no embedded one, users or NATS certificate
		srv, err = embedded.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer srv.Close()
		if nf.url == "" {
			nf.url = srv.NATSURL()
			cr, ok, err := srv.NATSCredentials(natsauth.RoleCoordinator, "")
			if err != nil {
				return err
			}
			if ok {
				nf.token, nf.tokenFile, nf.userFile = "", "", ""
				nf.user, nf.password = cr.User, cr.Password
				nf.ca = embedded.NATSCAPath(nf.dataDir)
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
	if *cpOnly {
		cr := srv.EtcdCredentials()
		fmt.Fprintf(c.stdout, "control plane only: NATS %s, etcd %s, data %s\n", nf.url, strings.Join(endpoints, ","), nf.dataDir)
		if cr != nil {
			fmt.Fprintf(c.stdout, "coordinators: swarmckpt coordinator --nats %s --nats-user-file %s --nats-ca %s --etcd %s --etcd-cacert %s --etcd-cert %s --etcd-key %s\n",
				nf.url, natsauth.UserFile(natsauth.Dir(nf.dataDir), natsauth.RoleCoordinator), embedded.NATSCAPath(nf.dataDir),
				strings.Join(endpoints, ","), cr.CA, cr.Cert, cr.Key)
		}
		if err := df.serveControlPlane(ctx, c); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}
	ncfg, err := nf.config(c, *name, natsauth.RoleCoordinator, "")
	if err != nil {
		return err
	}
	tr, err := natsbus.Connect(ctx, ncfg)
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
	var cl *members.Cluster
	if *gossip != "" {
		meta := members.Meta{Node: *name, Role: "coordinator"}
		var key []byte
		if !*noAuth {
			if key, err = members.LoadOrCreateKey(members.KeyPath(nf.dataDir)); err != nil {
				return err
			}
		}
		var join []string
		if *gossipJoin != "" {
			join = strings.Split(*gossipJoin, ",")
		}
		cl, err = members.Start(members.Config{Name: "coordinator/" + *name, Bind: *gossip, Join: join, Key: key, Meta: meta, Log: c.log})
		if err != nil && len(join) > 0 {
			// The other coordinators may all be down: start a membership of our own;
			// the agents join every coordinator's address.
			c.log.Warn("cannot join the other coordinators' memberlist; starting alone", "join", join, "err", err)
			cl, err = members.Start(members.Config{Name: "coordinator/" + *name, Bind: *gossip, Key: key, Meta: meta, Log: c.log})
		}
		if err != nil {
			return err
		}
		defer cl.Leave(2 * time.Second)
	}
	// The verifiers (inspect --verify's and the commit's) watch the agents through the
	// service built below (they run only once the service does).
	var svc *coordinator.Service
	agentAlive := func(n string) (time.Time, bool) { return svc.AgentAlive(n) }
	cfg := coordinator.Config{Name: *name, Bus: tr, Store: st, Elector: st.Elector(*leaderTTL), Resolver: res,
		Algorithms: registry.Lookup, SnapshotTimeout: *timeout, MigratePrepareWait: migratePrepareWait(*prepWait), Hold: holdtime.Budget{Base: *holdBase, Floor: *holdFloor << 20, Max: *holdMax},
		Verify: coordinator.AgentVerifierWatched(tr, 2*time.Minute, agentAlive), VerifyCommit: coordinator.AgentCommitVerifierWatched(tr, 2*time.Minute, agentAlive), Stopper: res, Policies: policySource(*policies, res), Log: c.log}
	if cl != nil {
		cfg.Members = cl.Members
	}
	reg, err := df.registry(ctx, c)
	if err != nil {
		return err
	}
	if reg != nil {
		if cfg.Metrics, err = metrics.NewCoordinator(reg); err != nil {
			return err
		}
	}
	svc, err = coordinator.New(cfg)
	if err != nil {
		return err
	}
	// A stack restored in exact mode runs as standalone containers the manager does not
	// see: the workers list them (restore, snapshot and migrate it again).
	res.SetStandalone(svc.StandaloneContainers)
	if cl != nil {
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
	fmt.Fprintf(c.stdout, "coordinator %s: NATS %s, etcd %s, data %s; leads once elected (a standby until then, leader TTL %v)\n",
		*name, nf.url, strings.Join(endpoints, ","), nf.dataDir, *leaderTTL)
	if srv != nil && *etcdEPs == "" && srv.EtcdCredentials() != nil {
		cr := srv.EtcdCredentials()
		fmt.Fprintf(c.stdout, "etcd: TLS with client certificates (etcdctl --cacert %s --cert %s --key %s)\n", cr.CA, cr.Cert, cr.Key)
	}
	if _, ok, _ := natsCreds(srv); ok {
		fmt.Fprintf(c.stdout, "NATS: TLS (CA %s) with per-role users in %s (agents on other hosts: 'swarmckpt coordinator credentials --node NAME')\n",
			embedded.NATSCAPath(nf.dataDir), natsauth.Dir(nf.dataDir))
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

func workerInfo(i worker.NodeInfo) (w node.Worker) {
	w.Node, w.Address, w.CRIUVersion = i.Node, i.Addr, i.CRIUVersion
	if i.Kernel != "" {
		w.Features = append(w.Features, "kernel="+i.Kernel)
	}
	if i.PostCopy.OK {
		w.Features = append(w.Features, node.FeaturePostCopy)
	}
	if i.PreCopy.OK {
		w.Features = append(w.Features, node.FeaturePreCopy)
	}
	w.Features = node.MergeFeatures(w.Features, i.Features)
	return w
}

// natsCreds says whether srv's NATS has per-role users.
func natsCreds(srv *embedded.Servers) (natsauth.Credentials, bool, error) {
	if srv == nil {
		return natsauth.Credentials{}, false, nil
	}
	return srv.NATSCredentials(natsauth.RoleCoordinator, "")
}

// etcdUserPassword is the external etcd's user and password: the password from
// passFile, else $SWARMCKPT_ETCD_PASSWORD.
func etcdUserPassword(user, passFile string) (string, string, error) {
	if user == "" {
		if passFile != "" {
			return "", "", usagef("--etcd-password-file needs --etcd-user")
		}
		return "", "", nil
	}
	pw := os.Getenv("SWARMCKPT_ETCD_PASSWORD")
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return "", "", usagef("--etcd-password-file: %v", err)
		}
		pw = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if pw == "" {
		return "", "", usagef("--etcd-user %s needs a password: --etcd-password-file FILE or $SWARMCKPT_ETCD_PASSWORD", user)
	}
	return user, pw, nil
}

const credentialsUsage = `
Usage: swarmckpt coordinator credentials --node NAME [--out FILE] [--data-dir DIR]
       swarmckpt coordinator credentials --nats-server-config NODE,NODE,... [--out FILE] [--data-dir DIR]

Writes the NATS credentials of one node's agent ("agent.NAME:password", mode 0600),
derived from the embedded coordinator's agent key (<data-dir>/nats-users/agent.key).
Copy the file to the node and start its agent with --nats-user-file FILE and --nats-ca
(a copy of <data-dir>/etcd-tls/ca.pem). The agent may subscribe only to NAME's subjects
and publish only its replies, heartbeats, results and markers.

With --nats-server-config it writes instead the authorization block of a nats-server
configuration file with the same users and permissions (the coordinator, the CLI and
the agents of the nodes listed), for an external NATS server (--nats); the data
directory's users are made if missing. Passwords are in clear: keep the file 0600.

Examples:
  swarmckpt coordinator credentials --node lab-2 --out /tmp/agent-lab-2.user
  swarmckpt coordinator credentials --nats-server-config node-1,node-2,node-3 --out /etc/nats/swarmckpt-auth.conf
`

func runCredentials(c *cli, args []string) error {
	fs := flag.NewFlagSet("coordinator credentials", flag.ContinueOnError)
	node := fs.String("node", "", "the node whose agent gets the credentials (required)")
	out := fs.String("out", "", "file to write (mode 0600); default: print to stdout")
	serverConf := fs.String("nats-server-config", "", "comma-separated node names: write a nats-server authorization block for them instead")
	dataDir := fs.String("data-dir", defaultDataDir, "the coordinator's data directory ($SWARMCKPT_DATA_DIR)")
	if v := os.Getenv("SWARMCKPT_DATA_DIR"); v != "" {
		*dataDir = v
	}
	if err := c.parseNoArgs(fs, credentialsUsage, "coordinator credentials", args); err != nil {
		return err
	}
	if *serverConf != "" {
		if *node != "" {
			return usagef("give --node or --nats-server-config, not both")
		}
		nodes := strings.Split(*serverConf, ",")
		for _, n := range nodes {
			if err := badName(validNodeFlag("--nats-server-config", n)); err != nil {
				return err
			}
		}
		sec, err := natsauth.Open(natsauth.Dir(*dataDir))
		if err != nil {
			return err
		}
		conf, err := sec.ServerConfig(nodes)
		if err != nil {
			return err
		}
		if *out == "" {
			fmt.Fprint(c.stdout, conf)
			return nil
		}
		return os.WriteFile(*out, []byte(conf), 0o600)
	}
	if *node == "" {
		return usagef("--node is required")
	}
	if err := badName(validNodeFlag("--node", *node)); err != nil {
		return err
	}
	cr, err := natsauth.AgentCredentials(natsauth.Dir(*dataDir), *node)
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintf(c.stdout, "%s:%s\n", cr.User, cr.Password)
		return nil
	}
	return natsauth.WriteFile(*out, cr)
}

// migratePrepareWait is the coordinator's MigratePrepareWait for the flag's value d
// (<= 0: not waited for).
func migratePrepareWait(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

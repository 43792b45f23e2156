package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/members"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

// Daemons is where the lab's swarmckpt processes listen: one coordinator with embedded
// NATS and etcd, and one worker plus one control-plane agent per node. Ports derive from
// the lab's subnet so that several labs coexist.
type Daemons struct {
	Binary      string `json:"binary"`        // the swarmckpt binary that runs them
	Dir         string `json:"dir"`           // coordinator --data-dir (etcd data, NATS users, logs)
	NATSPort    int    `json:"nats_port"`     // embedded NATS client port on 127.0.0.1
	EtcdPort    int    `json:"etcd_port"`     // embedded etcd client port
	EtcdPeer    int    `json:"etcd_peer"`     // embedded etcd peer port
	WorkerPort0 int    `json:"worker_port0"`  // worker of node i listens on WorkerPort0+i
	GossipPort  int    `json:"gossip_port"`   // coordinator's memberlist port; agents join it
	TLS         bool   `json:"tls,omitempty"` // workers run with TLS (certificates in Dir/tls)
	// Coordinators is the number of coordinators when more than one: a control-plane
	// process runs the embedded NATS and etcd and they elect a leader; 0: one
	// coordinator with NATS and etcd embedded.
	Coordinators int `json:"coordinators,omitempty"`
	// External is set when the coordinators use an external 3-member etcd and
	// 3-server NATS cluster instead of the embedded servers (external.go).
	External *External `json:"external,omitempty"`
}

// CoordinatorName is the name of the lab's coordinator i (1-based).
func (d Daemons) CoordinatorName(lab string, i int) string {
	if d.Coordinators <= 1 {
		return lab + "-coordinator"
	}
	return fmt.Sprintf("%s-coordinator-%d", lab, i)
}

// CoordinatorGossip is coordinator i's memberlist address (1-based): GossipPort for
// the first, 24000+10*subnet+i for the others (outside every lab's base range).
func (d Daemons) CoordinatorGossip(p Plan, i int) string {
	if i <= 1 {
		return fmt.Sprintf("127.0.0.1:%d", d.GossipPort)
	}
	return fmt.Sprintf("127.0.0.1:%d", 24000+10*p.Subnet+i)
}

// gossipAddrs are every coordinator's memberlist address, comma-separated (what the
// agents join).
func (d Daemons) gossipAddrs(p Plan) string {
	var as []string
	for i := 1; i <= max(d.Coordinators, 1); i++ {
		as = append(as, d.CoordinatorGossip(p, i))
	}
	return strings.Join(as, ",")
}

// EtcdURL is the embedded etcd's client URL (TLS).
func (d Daemons) EtcdURL() string { return fmt.Sprintf("https://127.0.0.1:%d", d.EtcdPort) }

// TLSDir holds the lab's worker CA and node certificates when TLS is on.
func (d Daemons) TLSDir() string { return filepath.Join(d.Dir, "tls") }

// workerTLS makes the lab's CA (once) and node's certificate (for 127.0.0.1, where the
// lab's workers listen) and returns the worker's and the agent's TLS flags.
func workerTLS(d *Daemons, node string) (workerFlags, agentFlags []string, err error) {
	dir := d.TLSDir()
	ca, _, err := pki.OpenCA(dir, "swarmckpt lab workers")
	if err != nil {
		return nil, nil, fmt.Errorf("lab worker CA: %w", err)
	}
	caCert, _ := pki.CAFiles(dir)
	cert, key := pki.NodeFiles(dir, node)
	if _, err := os.Stat(cert); errors.Is(err, os.ErrNotExist) {
		n, err := ca.Issue(node, []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
		if err == nil {
			_, _, err = n.Write(dir, node)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("lab worker certificate for %s: %w", node, err)
		}
	}
	return []string{"--tls-ca", caCert, "--tls-cert", cert, "--tls-key", key}, []string{"--worker-tls-ca", caCert}, nil
}

// NATSURL is the control plane URL the CLI uses (with --data-dir Dir for its NATS user
// and the CA: the embedded NATS serves TLS): the external NATS servers, comma-separated,
// when the lab runs them.
func (d Daemons) NATSURL() string {
	if d.External != nil {
		return d.External.NATSURL()
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", d.NATSPort)
}

// planDaemons lays out the daemons of p; base port 20000+10*K.
func planDaemons(p Plan, binary string) *Daemons {
	base := 20000 + 10*p.Subnet
	return &Daemons{Binary: binary, Dir: filepath.Join(p.DataDir, "coordinator"),
		GossipPort: base, NATSPort: base + 1, EtcdPort: base + 2, EtcdPeer: base + 3, WorkerPort0: base + 4}
}

// startDaemons starts the coordinator, then a worker and an agent per node, detached (own
// session, logs under d.Dir), each under a supervisor that restarts it when it ends (as
// the systemd units of deploy/systemd do), and waits until each worker listens and the
// coordinator's NATS answers. Down kills them: their command lines name the lab's
// directories.
func startDaemons(ctx context.Context, p Plan) error {
	d := p.Daemons
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d.Dir, err)
	}
	// One worker token for the lab's workers and agents (worker/auth.go).
	tokenFile := filepath.Join(d.Dir, "worker.token")
	if _, err := worker.WriteNewTokenFile(tokenFile); err != nil {
		return err
	}
	if err := startCoordinators(ctx, p); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if err := startNodeDaemons(ctx, p, n, tokenFile); err != nil {
			return err
		}
	}
	return nil
}

// startNodeDaemons starts node n's worker (and waits until it listens) and its
// control-plane agent, each under a supervisor (spawn); tokenFile is the workers'
// token. Up runs it for every node, Recover for a failed one.
func startNodeDaemons(ctx context.Context, p Plan, n Node, tokenFile string) error {
	d := p.Daemons
	addr := fmt.Sprintf("127.0.0.1:%d", d.WorkerPort0+n.Index)
	wTLS, aTLS := []string{"--insecure-no-tls"}, []string(nil) // the lab's workers share one host
	if d.TLS {
		var err error
		if wTLS, aTLS, err = workerTLS(d, n.Name); err != nil {
			return err
		}
	}
	if err := spawn(d, "worker-"+n.Name, append([]string{"worker", "--node", n.Name, "--docker-host", n.DockerHost(),
		"--exec-root", n.ExecRoot, "--data-root", n.DataRoot, "--listen", addr,
		"--journal", filepath.Join(p.RunDir, n.Name, "holds"), "--token-file", tokenFile}, wTLS...)...); err != nil {
		return err
	}
	if err := waitListening(ctx, "worker "+n.Name, filepath.Join(d.Dir, "worker-"+n.Name+".log"), addr); err != nil {
		return err
	}
	// The agent's own NATS user (natsauth: it may address no other node) and the
	// coordinator's memberlist key.
	userFile := filepath.Join(d.Dir, "agent-"+n.Name+".user")
	cr, err := natsauth.AgentCredentials(natsauth.Dir(d.Dir), n.Name)
	if err != nil {
		return err
	}
	if err := natsauth.WriteFile(userFile, cr); err != nil {
		return err
	}
	if err := spawn(d, "agent-"+n.Name, append([]string{"agent", "--node", n.Name, "--worker", addr, "--worker-token-file", tokenFile,
		"--nats", d.NATSURL(), "--data-dir", d.Dir, "--nats-user-file", userFile, "--nats-ca", embedded.NATSCAPath(d.Dir),
		"--gossip-join", d.gossipAddrs(p), "--gossip-key-file", members.KeyPath(d.Dir)}, aTLS...)...); err != nil {
		return err
	}
	return nil
}

// startCoordinators starts the lab's coordinator with NATS and etcd embedded, or, for
// several, a control-plane process running them ('coordinator --control-plane-only')
// and the coordinators on it, each joining the others' memberlist; with an external
// control plane, the external etcd and NATS clusters and the coordinators on them.
// It waits until NATS and every coordinator's memberlist listen.
func startCoordinators(ctx context.Context, p Plan) error {
	d := p.Daemons
	m := p.Manager()
	embeddedPorts := []string{"--nats-port", fmt.Sprint(d.NATSPort), "--etcd-port", fmt.Sprint(d.EtcdPort), "--etcd-peer-port", fmt.Sprint(d.EtcdPeer)}
	if d.External != nil {
		if err := startExternal(ctx, p); err != nil {
			return err
		}
		x := d.External
		ca, _, _ := x.tlsFiles(d.Dir)
		return startElecting(ctx, p, "--nats", d.NATSURL(), "--nats-user-file", natsauth.UserFile(natsauth.Dir(d.Dir), natsauth.RoleCoordinator), "--nats-ca", ca,
			"--etcd", strings.Join(x.EtcdEndpoints(), ","), "--etcd-cacert", ca, "--etcd-user", EtcdUser, "--etcd-password-file", x.EtcdPasswordFile())
	}
	if d.Coordinators <= 1 {
		if err := spawn(d, "coordinator", append([]string{"coordinator", "--data-dir", d.Dir, "--name", d.CoordinatorName(p.Name, 1),
			"--docker", m.DockerHost(), "--gossip", d.CoordinatorGossip(p, 1)}, embeddedPorts...)...); err != nil {
			return err
		}
		for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", d.NATSPort), d.CoordinatorGossip(p, 1)} {
			if err := waitListening(ctx, "coordinator", filepath.Join(d.Dir, "coordinator.log"), addr); err != nil {
				return err
			}
		}
		return nil
	}
	if err := spawn(d, "controlplane", append([]string{"coordinator", "--control-plane-only", "--data-dir", d.Dir}, embeddedPorts...)...); err != nil {
		return err
	}
	for _, port := range []int{d.NATSPort, d.EtcdPort} {
		if err := waitListening(ctx, "control plane (NATS, etcd)", filepath.Join(d.Dir, "controlplane.log"), fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			return err
		}
	}
	cr := embedded.EtcdCredentialsPath(d.Dir)
	return startElecting(ctx, p, "--nats", d.NATSURL(), "--nats-user-file", natsauth.UserFile(natsauth.Dir(d.Dir), natsauth.RoleCoordinator), "--nats-ca", embedded.NATSCAPath(d.Dir),
		"--etcd", d.EtcdURL(), "--etcd-cacert", cr.CA, "--etcd-cert", cr.Cert, "--etcd-key", cr.Key)
}

// startElecting starts the lab's coordinators on a shared NATS and etcd (their
// connection flags cp), each joining the others' memberlist, and waits until each
// one's memberlist listens. They elect a leader; the others stand by.
func startElecting(ctx context.Context, p Plan, cp ...string) error {
	d := p.Daemons
	m := p.Manager()
	n := max(d.Coordinators, 1)
	for i := 1; i <= n; i++ {
		var others []string
		for j := 1; j <= n; j++ {
			if j != i {
				others = append(others, d.CoordinatorGossip(p, j))
			}
		}
		logName := "coordinator"
		if n > 1 {
			logName = fmt.Sprintf("coordinator-%d", i)
		}
		args := append([]string{"coordinator", "--data-dir", d.Dir, "--name", d.CoordinatorName(p.Name, i)}, cp...)
		args = append(args, "--docker", m.DockerHost(), "--gossip", d.CoordinatorGossip(p, i))
		if len(others) > 0 {
			args = append(args, "--gossip-join", strings.Join(others, ","))
		}
		if err := spawn(d, logName, args...); err != nil {
			return err
		}
		if err := waitListening(ctx, "coordinator "+fmt.Sprint(i), filepath.Join(d.Dir, logName+".log"), d.CoordinatorGossip(p, i)); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts `swarmckpt lab supervise -- swarmckpt ARGS...` (Supervise), both logging
// to d.Dir/LOGNAME.log.
func spawn(d *Daemons, logName string, args ...string) error {
	return spawnProgram(d, logName, d.Binary, args...)
}

// spawnProgram starts `swarmckpt lab supervise -- PROGRAM ARGS...`, both logging to
// d.Dir/LOGNAME.log.
func spawnProgram(d *Daemons, logName, program string, args ...string) error {
	logFile := filepath.Join(d.Dir, logName+".log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", logName, err)
	}
	defer f.Close()
	cmd := exec.Command(d.Binary, append([]string{"lab", "supervise", "--", program}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", logName, err)
	}
	return cmd.Process.Release()
}

func waitListening(ctx context.Context, what, logFile, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after 60s; log %s:\n%s", what, addr, logFile, tail(logFile, 8))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findBinary returns the swarmckpt binary to run the daemons: explicit, else the running
// executable when it is swarmckpt, else swarmckpt on PATH.
func findBinary(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if exe, err := os.Executable(); err == nil && strings.HasPrefix(filepath.Base(exe), "swarmckpt") && !strings.HasSuffix(exe, ".test") {
		return exe, nil
	}
	if p, err := exec.LookPath("swarmckpt"); err == nil {
		return p, nil
	}
	return "", errors.New("cannot find the swarmckpt binary to run the lab's daemons: run 'make build' and use bin/swarmckpt, or set --daemons=false")
}

// forkOfParent tells whether process pid, whose command line is cmdline, is a child
// its parent forked and has not yet exec'd: between fork and exec a child has its
// parent's command line. A daemon starting nsenter for an unlock is then found by the
// daemon's command line too (fault seed 1500 killed the worker's child that was to run
// nft, not the worker).
func forkOfParent(pid string, cmdline []byte) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state, ppid, ...
	if len(f) < 2 {
		return false
	}
	parent, err := os.ReadFile(filepath.Join("/proc", f[1], "cmdline"))
	return err == nil && string(parent) == string(cmdline)
}

// DaemonPid is the PID of lab p's running daemon role ("coordinator", or "worker" or
// "agent" of node), not of its supervisor nor of a child it is starting; 0 if none
// runs. Found by command line.
func (p Plan) DaemonPid(role, node string) int {
	d := p.Daemons
	if d == nil {
		return 0
	}
	n, _ := p.NodeByName(node)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 3 || args[0] != d.Binary || forkOfParent(e.Name(), b) {
			continue
		}
		has := func(flag, val string) bool {
			for i := 0; i+1 < len(args); i++ {
				if args[i] == flag && args[i+1] == val {
					return true
				}
			}
			return false
		}
		var match bool
		switch role {
		case "coordinator": // any coordinator of the lab (the first found); see CoordinatorPids
			match = args[1] == "coordinator" && args[2] != "agent" && !slices.Contains(args, "--control-plane-only") && has("--data-dir", d.Dir)
		case "controlplane":
			match = args[1] == "coordinator" && slices.Contains(args, "--control-plane-only") && has("--data-dir", d.Dir)
		case "agent":
			// 'coordinator agent': started by an earlier build (the deprecated alias).
			agent := args[1] == "agent" || args[1] == "coordinator" && args[2] == "agent"
			match = agent && has("--node", node) && has("--data-dir", d.Dir)
		case "worker":
			match = args[1] == "worker" && has("--node", node) && has("--exec-root", n.ExecRoot)
		}
		if match {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}

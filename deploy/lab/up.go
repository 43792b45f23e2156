package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Up creates the lab described by c and returns its plan. On failure it leaves whatever
// it created for Down (which it names in the error) rather than guessing what to remove.
func Up(ctx context.Context, log *slog.Logger, c Config) (Plan, error) {
	if err := c.Validate(); err != nil {
		return Plan{}, err
	}
	if os.Geteuid() != 0 {
		return Plan{}, errors.New("lab up needs root (it creates network namespaces and starts dockerd); run it as root or with sudo")
	}
	for _, tool := range []string{"dockerd", "ip", "nsenter", "unshare", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Plan{}, fmt.Errorf("%s is not installed: run 'make setup' first", tool)
		}
	}
	if c.ExternalControlPlane {
		for tool, pkg := range map[string]string{"etcd": "etcd-server", "nats-server": "nats-server"} {
			if _, err := exec.LookPath(tool); err != nil {
				return Plan{}, fmt.Errorf("%s is not installed: run 'make setup' (or 'apt-get install %s') for --external-control-plane", tool, pkg)
			}
		}
	}
	// One lab allocation at a time on this machine (tests bring labs up in parallel).
	unlock, err := lockRunDir(c.RunDir)
	if err != nil {
		return Plan{}, err
	}
	defer unlock()
	if left := leftovers(c); len(left) > 0 {
		return Plan{}, fmt.Errorf("lab %q %w (%s); run 'swarmckpt lab down --name %s' first, or choose another --name",
			c.Name, ErrExists, strings.Join(left, ", "), c.Name)
	}
	taken, err := takenSubnets(c)
	if err != nil {
		return Plan{}, err
	}
	routes, err := hostRoutes(ctx)
	if err != nil {
		return Plan{}, err
	}
	k, err := FreeSubnet(taken, routes)
	if err != nil {
		return Plan{}, err
	}
	p := NewPlan(c, k)
	if c.Daemons {
		bin, err := findBinary(c.Binary)
		if err != nil {
			return Plan{}, err
		}
		p.Daemons = planDaemons(p, bin)
		p.Daemons.TLS = c.TLS
		if c.Coordinators > 1 {
			p.Daemons.Coordinators = c.Coordinators
		}
		if c.ExternalControlPlane {
			p.Daemons.External = planExternal(p, filepath.Join(p.Daemons.Dir, "external"))
		}
	}
	log = log.With("component", "lab", "lab", p.Name)
	fail := func(err error) (Plan, error) {
		return p, fmt.Errorf("lab up %s failed: %w; run 'swarmckpt lab down --name %s' to remove what was created", p.Name, err, p.Name)
	}
	if err := writeState(p); err != nil {
		return fail(err)
	}
	start := time.Now()
	if err := wire(ctx, p); err != nil {
		return fail(err)
	}
	log.Info("network wired", "subnet", fmt.Sprintf("10.231.%d.0/24", k), "nodes", len(p.Nodes))
	if err := forEachNode(p, func(n Node) error { return startDockerd(ctx, p, n) }); err != nil {
		return fail(err)
	}
	log.Info("dockerd running on every node", "elapsed", time.Since(start).Round(time.Millisecond))
	if err := formSwarm(ctx, p); err != nil {
		return fail(err)
	}
	log.Info("swarm formed", "manager", p.Manager().Name, "elapsed", time.Since(start).Round(time.Millisecond))
	if c.ImageDir != "" {
		tars, err := imageTars(c.ImageDir)
		if err != nil {
			return fail(err)
		}
		if len(tars) == 0 {
			log.Warn("no image tars found; workload images not loaded (run 'make images')", "dir", c.ImageDir)
		}
		if err := LoadImages(ctx, p, tars); err != nil {
			return fail(err)
		}
		log.Info("images loaded", "images", len(tars), "elapsed", time.Since(start).Round(time.Millisecond))
	}
	if p.Daemons != nil {
		if err := startDaemons(ctx, p); err != nil {
			return fail(err)
		}
		log.Info("coordinator, workers and agents running", "nats", p.Daemons.NATSURL(), "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return p, nil
}

// lockRunDir takes an exclusive flock on RunDir/.lock until unlock is called.
func lockRunDir(runDir string) (func(), error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", runDir, err)
	}
	f, err := os.OpenFile(filepath.Join(runDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// leftovers lists what exists already of a lab named c.Name.
func leftovers(c Config) []string {
	var left []string
	run, data := filepath.Join(c.RunDir, c.Name), filepath.Join(c.DataDir, c.Name)
	for _, d := range []string{run, data} {
		if _, err := os.Stat(d); err == nil {
			left = append(left, d)
		}
	}
	nss, _ := netnsList()
	for _, ns := range nss {
		if ownsNetns(c.Name, ns) {
			left = append(left, "netns "+ns)
		}
	}
	return left
}

// ownsNetns reports whether netns name belongs to lab lab: lab-sw or lab-<digits>.
func ownsNetns(lab, ns string) bool {
	rest, ok := strings.CutPrefix(ns, lab+"-")
	if !ok || rest == "" {
		return false
	}
	if rest == "sw" {
		return true
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// takenSubnets reads the subnets of the other labs' state files.
func takenSubnets(c Config) (map[int]bool, error) {
	taken := map[int]bool{}
	files, err := filepath.Glob(filepath.Join(c.RunDir, "*", "lab.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if p, err := readState(f); err == nil {
			taken[p.Subnet] = true
		}
	}
	return taken, nil
}

func writeState(p Plan) error {
	for _, d := range []string{p.RunDir, p.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, n := range p.Nodes {
		for _, d := range []string{n.ExecRoot, n.DataRoot, n.ConfigDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("create %s: %w", d, err)
			}
		}
		cfg, err := p.DaemonConfig(n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.ConfigDir, "daemon.json"), cfg, 0o600); err != nil {
			return fmt.Errorf("write daemon config: %w", err)
		}
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p.StateFile(), b, 0o600)
}

func readState(file string) (Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("lab state %s is corrupt (%v); run 'swarmckpt lab down --name NAME'", file, err)
	}
	return p, nil
}

// Load returns the plan of the running lab name under runDir.
func Load(runDir, name string) (Plan, error) {
	p, err := readState(filepath.Join(runDir, name, "lab.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Plan{}, fmt.Errorf("lab %q %w: create it with 'swarmckpt lab up --name %s'", name, ErrNotFound, name)
	}
	return p, err
}

// wire creates the switch namespace with its bridge and one namespace per node, joined by
// veth pairs.
func wire(ctx context.Context, p Plan) error {
	steps := [][]string{
		{"ip", "netns", "add", p.Switch},
		{"ip", "-n", p.Switch, "link", "set", "lo", "up"},
		{"ip", "-n", p.Switch, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", p.Switch, "link", "set", "br0", "up"},
	}
	for _, n := range p.Nodes {
		port := fmt.Sprintf("p%d", n.Index)
		steps = append(steps,
			[]string{"ip", "netns", "add", n.Name},
			[]string{"ip", "-n", n.Name, "link", "set", "lo", "up"},
			[]string{"ip", "-n", p.Switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.Name},
			[]string{"ip", "-n", p.Switch, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", n.Name, "addr", "add", fmt.Sprintf("%s/%d", n.Addr, n.Prefix), "dev", "eth0"},
			[]string{"ip", "-n", n.Name, "link", "set", "eth0", "up"},
			// dockerd and swarm want a default route; it leads only into the lab switch.
			[]string{"ip", "-n", n.Name, "route", "add", "default", "dev", "eth0"},
		)
	}
	for _, s := range steps {
		if _, err := sh(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startDockerd starts node n's dockerd detached (own session, own UTS namespace with
// hostname n.Name) and waits until its API answers.
func startDockerd(ctx context.Context, p Plan, n Node) error {
	logf, err := os.OpenFile(n.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("node %s: open log: %w", n.Name, err)
	}
	defer logf.Close()
	dockerd := strings.Join([]string{"exec dockerd",
		"--config-file", filepath.Join(n.ConfigDir, "daemon.json"),
		"--data-root", n.DataRoot, "--exec-root", n.ExecRoot,
		"--pidfile", n.PidFile, "-H", "unix://" + n.Socket}, " ")
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+n.Name, "--",
		"unshare", "--uts", "--", "sh", "-c", "hostname "+n.Name+" && "+dockerd)
	// Lab nodes have no registry: images are loaded from tars (lab deploy). Without
	// this, every swarm task start first tries a pull and waits ~20 s for its DNS
	// lookup to time out (docs/restore.md, "Measured").
	//
	// TMPDIR: containerd (started by dockerd with dockerd's environment) unpacks the
	// checkpoint of each `docker start --checkpoint` into a ctrd-checkpoint* directory
	// of $TMPDIR and, in this Docker's containerd, leaves it there (seen: one per
	// restore, none for `docker checkpoint create`): the benchmarks' Docker baselines
	// left 1,594 of them (42 GiB of process memory) in the host's /tmp, and the disk
	// filled (CRIU then failed with "No space left on device"). A private directory of
	// the node's data (0700) keeps them, and lab down removes them with it.
	tmp := n.TmpDir()
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("node %s: create its temporary directory: %w", n.Name, err)
	}
	cmd.Env = append(os.Environ(), "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1", "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node %s: start dockerd: %w", n.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cli, err := nodeClient(n)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, perr := cli.Ping(pctx)
		cancel()
		if perr == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("node %s: dockerd exited (%v); last log lines:\n%s", n.Name, err, tail(n.LogFile, 8))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: dockerd did not answer within 60s; log %s:\n%s", n.Name, n.LogFile, tail(n.LogFile, 8))
		}
	}
}

func tail(file string, lines int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// NodeClient returns a Docker API client for lab node n.
func nodeClient(n Node) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.WithHost(n.DockerHost()), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("node %s: docker client: %w", n.Name, err)
	}
	return c, nil
}

// formSwarm makes the first node a manager and joins the others as workers.
func formSwarm(ctx context.Context, p Plan) error {
	m := p.Manager()
	mc, err := nodeClient(m)
	if err != nil {
		return err
	}
	defer mc.Close()
	if _, err := mc.SwarmInit(ctx, swarm.InitRequest{ListenAddr: m.Addr + ":2377", AdvertiseAddr: m.Addr}); err != nil {
		return fmt.Errorf("node %s: swarm init: %w", m.Name, err)
	}
	sw, err := mc.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("node %s: swarm inspect: %w", m.Name, err)
	}
	err = forEachNode(p, func(n Node) error {
		if n.Manager {
			return nil
		}
		c, err := nodeClient(n)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SwarmJoin(ctx, swarm.JoinRequest{ListenAddr: n.Addr + ":2377", AdvertiseAddr: n.Addr,
			RemoteAddrs: []string{m.Addr + ":2377"}, JoinToken: sw.JoinTokens.Worker}); err != nil {
			return fmt.Errorf("node %s: swarm join: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Wait until the manager sees every node ready.
	deadline := time.Now().Add(60 * time.Second)
	for {
		nodes, err := mc.NodeList(ctx, swarm.NodeListOptions{})
		ready := 0
		if err == nil {
			for _, nd := range nodes {
				if nd.Status.State == swarm.NodeStateReady {
					ready++
				}
			}
		}
		if ready == len(p.Nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swarm: %d of %d nodes ready after 60s (err %v)", ready, len(p.Nodes), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func imageTars(dir string) ([]string, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return filepath.Glob(filepath.Join(dir, "*.tar"))
}

// LoadImages loads every tar onto every node of p, nodes in parallel.
func LoadImages(ctx context.Context, p Plan, tars []string) error {
	return forEachNode(p, func(n Node) error {
		c, err := nodeClient(n)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, t := range tars {
			if err := loadImage(ctx, c, t); err != nil {
				return fmt.Errorf("node %s: load %s: %w", n.Name, t, err)
			}
		}
		return nil
	})
}

func loadImage(ctx context.Context, c *client.Client, tar string) error {
	f, err := os.Open(tar)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := c.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read load response: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// forEachNode runs f for every node in parallel and joins the errors.
func forEachNode(p Plan, f func(Node) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.Nodes))
	for i, n := range p.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

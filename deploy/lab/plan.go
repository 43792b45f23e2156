package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
)

// MaxNodes is the largest lab Up accepts.
const MaxNodes = 5

// MaxCoordinators is the most coordinators a lab runs.
const MaxCoordinators = 3

// ErrExists is returned by Up when a lab of that name (or leftovers of one) exists.
var ErrExists = errors.New("already exists")

// ErrNotFound is returned when no lab of that name exists.
var ErrNotFound = errors.New("not found")

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// Config describes a lab to bring up.
type Config struct {
	// Name prefixes every object of the lab (namespaces, directories, node hostnames).
	// Lowercase letters and digits, at most 10 characters. Default "lab".
	Name string
	// Nodes is the number of Docker nodes, 1..MaxNodes. Default 3.
	Nodes int
	// ImageDir holds docker-load-able image tars (*.tar) loaded onto every node.
	// Empty: no images are loaded. Default "build/workloads".
	ImageDir string
	// Runtime is the path of an OCI runtime registered on every node as runtime
	// "swarmckpt" and made the default runtime. Empty: runc is the default runtime.
	Runtime string
	// RunDir is the root for sockets, pid files and exec roots. Default /run/swarmckpt.
	RunDir string
	// DataDir is the root for node data roots and logs. Default /var/lib/swarmckpt.
	DataDir string
	// Daemons starts swarmckpt's own processes with the lab: a coordinator (embedded NATS
	// and etcd) and a worker plus a control-plane agent per node. Default true.
	Daemons bool
	// Binary is the swarmckpt binary the daemons run. Empty: the running executable, or
	// swarmckpt on PATH.
	Binary string
	// Coordinators is the number of coordinators (1..MaxCoordinators). One runs NATS
	// and etcd embedded in its own process; with more, a control-plane process
	// ('coordinator --control-plane-only') runs them and the coordinators elect a
	// leader among themselves (the others stand by). 0 means 1.
	Coordinators int
	// TLS runs the lab's workers with TLS (a CA and node certificates made under the
	// coordinator's directory, tls/) and their agents with its CA (docs/operations.md,
	// "Worker TLS").
	TLS bool
	// ExternalControlPlane runs, instead of the embedded NATS and etcd, a 3-member etcd
	// cluster (Debian's etcd) with TLS and authentication and a 3-server NATS cluster
	// (Debian's nats-server) with TLS and per-role users, all on 127.0.0.1 and
	// supervised; the coordinators connect to them as to external servers
	// (docs/lab.md, "External control plane"). Needs Daemons.
	ExternalControlPlane bool
}

// DefaultConfig returns the configuration `swarmckpt lab up` uses without flags.
func DefaultConfig() Config {
	return Config{Name: "lab", Nodes: 3, ImageDir: "build/workloads", RunDir: "/run/swarmckpt", DataDir: "/var/lib/swarmckpt", Daemons: true, Coordinators: 1}
}

// Validate reports what is wrong with c, naming the fix.
func (c Config) Validate() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("lab name %q is invalid: use 1-10 lowercase letters and digits, starting with a letter", c.Name)
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d is out of range: a lab has 1 to %d nodes", c.Nodes, MaxNodes)
	}
	if c.Coordinators < 0 || c.Coordinators > MaxCoordinators {
		return fmt.Errorf("--coordinators %d is out of range: a lab runs 1 to %d coordinators", c.Coordinators, MaxCoordinators)
	}
	if c.ExternalControlPlane && !c.Daemons {
		return errors.New("--external-control-plane runs the lab's coordinators on external etcd and NATS clusters: it needs --daemons")
	}
	if c.RunDir == "" || c.DataDir == "" {
		return errors.New("lab: run and data directories must be set")
	}
	return nil
}

// Node is one planned lab node.
type Node struct {
	Name      string `json:"name"`      // hostname and netns name, e.g. lab-1
	Index     int    `json:"index"`     // 1-based
	Addr      string `json:"addr"`      // underlay address, e.g. 10.231.1.11
	Prefix    int    `json:"prefix"`    // underlay prefix length
	Socket    string `json:"socket"`    // dockerd unix socket path
	ExecRoot  string `json:"exec_root"` // dockerd --exec-root
	DataRoot  string `json:"data_root"` // dockerd --data-root
	RuncRoot  string `json:"runc_root"` // runc --root of the node's containers
	PidFile   string `json:"pid_file"`
	LogFile   string `json:"log_file"`
	ConfigDir string `json:"config_dir"`
	Manager   bool   `json:"manager"`
}

// TmpDir is the node's private temporary directory ($TMPDIR of its dockerd and
// containerd), inside its data directory.
func (n Node) TmpDir() string { return filepath.Join(filepath.Dir(n.DataRoot), "tmp") }

// DockerHost is the DOCKER_HOST value for the node.
func (n Node) DockerHost() string { return "unix://" + n.Socket }

// Plan is the full, deterministic description of a lab.
type Plan struct {
	Name    string `json:"name"`
	Subnet  int    `json:"subnet"` // K in 10.231.K.0/24
	Switch  string `json:"switch"` // netns of the bridge
	RunDir  string `json:"run_dir"`
	DataDir string `json:"data_dir"`
	Runtime string `json:"runtime,omitempty"`
	Nodes   []Node `json:"nodes"`
	// Daemons is set when the lab runs swarmckpt's coordinator, workers and agents.
	Daemons *Daemons `json:"daemons,omitempty"`
}

// NewPlan lays out a lab named c.Name with c.Nodes nodes on subnet 10.231.k.0/24.
func NewPlan(c Config, k int) Plan {
	p := Plan{Name: c.Name, Subnet: k, Switch: c.Name + "-sw",
		RunDir: filepath.Join(c.RunDir, c.Name), DataDir: filepath.Join(c.DataDir, c.Name), Runtime: c.Runtime}
	for i := 1; i <= c.Nodes; i++ {
		name := fmt.Sprintf("%s-%d", c.Name, i)
		run := filepath.Join(p.RunDir, name)
		data := filepath.Join(p.DataDir, name)
		p.Nodes = append(p.Nodes, Node{
			Name: name, Index: i, Addr: fmt.Sprintf("10.231.%d.%d", k, 10+i), Prefix: 24,
			Socket: filepath.Join(run, "docker.sock"), ExecRoot: filepath.Join(run, "exec"),
			DataRoot: filepath.Join(data, "docker"), RuncRoot: filepath.Join(run, "exec", "runtime-runc", "moby"),
			PidFile: filepath.Join(run, "dockerd.pid"), LogFile: filepath.Join(data, "dockerd.log"),
			ConfigDir: filepath.Join(data, "config"), Manager: i == 1,
		})
	}
	return p
}

// Manager returns the swarm manager node.
func (p Plan) Manager() Node { return p.Nodes[0] }

// StateFile is where Up records the plan.
func (p Plan) StateFile() string { return filepath.Join(p.RunDir, "lab.json") }

// DaemonConfig is the daemon.json of node n: experimental on (checkpoint), the project's
// runtime as default if configured, json-file logs, and no host-facing features.
func (p Plan) DaemonConfig(n Node) ([]byte, error) {
	cfg := map[string]any{
		"experimental": true,
		"log-driver":   "json-file",
		"log-opts":     map[string]string{"max-size": "10m", "max-file": "2"},
		// The lab's switch namespace has no route out; keep the bridge local.
		"bip": fmt.Sprintf("172.30.%d.1/24", n.Index),
	}
	if p.Runtime != "" {
		cfg["runtimes"] = map[string]any{"swarmckpt": map[string]string{"path": p.Runtime}}
		cfg["default-runtime"] = "swarmckpt"
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// FreeSubnet picks the lowest K in 1..250 such that 10.231.K.0/24 is used neither by
// another lab (taken) nor by any route of the host (routes, as CIDR strings).
func FreeSubnet(taken map[int]bool, routes []string) (int, error) {
	used := map[int]bool{}
	for k := range taken {
		used[k] = true
	}
	for _, r := range routes {
		var a, b, c, d, bits int
		if n, _ := fmt.Sscanf(r, "%d.%d.%d.%d/%d", &a, &b, &c, &d, &bits); n == 5 && a == 10 {
			if bits <= 16 && (b == 231 || bits <= 8) {
				return 0, fmt.Errorf("host route %s covers the lab range 10.231.0.0/16; remove it or change the lab code's range", r)
			}
			if b == 231 {
				used[c] = true
			}
		}
	}
	for k := 1; k <= 250; k++ {
		if !used[k] {
			return k, nil
		}
	}
	return 0, errors.New("no free lab subnet in 10.231.1-250.0/24; run 'swarmckpt lab down --name NAME' for labs you no longer need")
}

package container

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Sentinel errors, wrapped with the container's name and the cause.
var (
	// ErrNotFound: no container of that name or ID exists on this node.
	ErrNotFound = errors.New("container: not found on this node")
	// ErrNotRunning: the container exists but has no running process.
	ErrNotRunning = errors.New("container: not running")
)

// Ref identifies a running container on this node: what the primitives need.
type Ref struct {
	// ID is the full Docker container ID (also the runc container ID).
	ID string
	// Name is the Docker name without the leading slash, for messages.
	Name string
	// Pid is the host PID of the container's init process.
	Pid int
}

// String names the container for error messages.
func (r Ref) String() string {
	if r.Name != "" {
		return fmt.Sprintf("%s (%.12s)", r.Name, r.ID)
	}
	return fmt.Sprintf("%.12s", r.ID)
}

// Network is one network attachment of a container.
type Network struct {
	// Name of the Docker network.
	Name string `json:"name"`
	// IPv4 is the container's address on it (empty when none).
	IPv4 string `json:"ipv4,omitempty"`
	// IPv6 is the container's IPv6 address on it (empty when none).
	IPv6 string `json:"ipv6,omitempty"`
	// Aliases are the DNS aliases of the container on that network.
	Aliases []string `json:"aliases,omitempty"`
}

// Mount is one mount of a container.
type Mount struct {
	// Type is bind, volume or tmpfs.
	Type string `json:"type"`
	// Source is the host path (bind) or the volume name (volume).
	Source string `json:"source,omitempty"`
	// Target is the path inside the container.
	Target string `json:"target"`
	// ReadOnly mounts are read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// TmpfsSize and TmpfsMode are a tmpfs mount's size in bytes and permission bits
	// (0: Docker's defaults).
	TmpfsSize int64  `json:"tmpfsSize,omitempty"`
	TmpfsMode uint32 `json:"tmpfsMode,omitempty"`
	// Driver is a volume's driver ("local" is the node's own disk; empty in specs
	// recorded before it existed, which means local too).
	Driver string `json:"driver,omitempty"`
}

// LocalVolume tells whether m is a volume whose data lives on its node only.
func (m Mount) LocalVolume() bool {
	return m.Type == "volume" && (m.Driver == "" || m.Driver == "local")
}

// PortBinding publishes a container port on the node (docker run -p).
type PortBinding struct {
	// Port is PORT/PROTO inside the container, e.g. 6379/tcp.
	Port string `json:"port"`
	// HostIP and HostPort are where it is published (empty: all addresses, any port).
	HostIP   string `json:"hostIP,omitempty"`
	HostPort string `json:"hostPort,omitempty"`
}

// Ulimit is one resource limit set on the container's processes (docker run --ulimit).
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Device is a host device made available in the container (docker run --device).
type Device struct {
	PathOnHost        string `json:"pathOnHost"`
	PathInContainer   string `json:"pathInContainer,omitempty"`
	CgroupPermissions string `json:"cgroupPermissions,omitempty"`
}

// Spec is everything needed to recreate a container on another node so that CRIU can
// restore its processes into it.
type Spec struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"`
	ImageID    string            `json:"imageID,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Tty        bool              `json:"tty,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Mounts     []Mount           `json:"mounts,omitempty"`
	Networks   []Network         `json:"networks,omitempty"`
	// Service and Task are the swarm service and task names (empty for standalone
	// containers); Slot is the task's slot (0 for global or standalone).
	Service string `json:"service,omitempty"`
	Task    string `json:"task,omitempty"`
	Slot    int    `json:"slot,omitempty"`

	// Runtime settings docker create accepts, as docker inspect shows them (zero: not
	// set, Docker's default). Manifests written before they existed decode to zero.

	// Init runs Docker's init (docker-init, bind-mounted at /sbin/docker-init) as PID 1
	// with the program as its child (docker run --init, compose init: true).
	Init         bool          `json:"init,omitempty"`
	ExposedPorts []string      `json:"exposedPorts,omitempty"`
	PortBindings []PortBinding `json:"portBindings,omitempty"`
	// Memory, MemorySwap and MemoryReservation are in bytes (MemorySwap -1: unlimited).
	Memory            int64  `json:"memory,omitempty"`
	MemorySwap        int64  `json:"memorySwap,omitempty"`
	MemoryReservation int64  `json:"memoryReservation,omitempty"`
	NanoCPUs          int64  `json:"nanoCpus,omitempty"`
	CPUShares         int64  `json:"cpuShares,omitempty"`
	CPUQuota          int64  `json:"cpuQuota,omitempty"`
	CPUPeriod         int64  `json:"cpuPeriod,omitempty"`
	CpusetCpus        string `json:"cpusetCpus,omitempty"`
	// PidsLimit is the pids cgroup limit (0: none).
	PidsLimit      int64             `json:"pidsLimit,omitempty"`
	CapAdd         []string          `json:"capAdd,omitempty"`
	CapDrop        []string          `json:"capDrop,omitempty"`
	Privileged     bool              `json:"privileged,omitempty"`
	Ulimits        []Ulimit          `json:"ulimits,omitempty"`
	Sysctls        map[string]string `json:"sysctls,omitempty"`
	ExtraHosts     []string          `json:"extraHosts,omitempty"`
	ReadonlyRootfs bool              `json:"readonlyRootfs,omitempty"`
	// Tmpfs are the --tmpfs mounts: target -> mount options (tmpfs mounts of the
	// Mounts API, as swarm makes them, are in Mounts).
	Tmpfs      map[string]string `json:"tmpfs,omitempty"`
	StopSignal string            `json:"stopSignal,omitempty"`
	// StopTimeout is the seconds docker stop waits before SIGKILL (nil: Docker's 10).
	StopTimeout *int     `json:"stopTimeout,omitempty"`
	SecurityOpt []string `json:"securityOpt,omitempty"`
	// ShmSize is /dev/shm's size in bytes.
	ShmSize int64    `json:"shmSize,omitempty"`
	Devices []Device `json:"devices,omitempty"`
	// DNS, DNSSearch and DNSOptions are the resolv.conf settings Docker writes.
	DNS        []string `json:"dns,omitempty"`
	DNSSearch  []string `json:"dnsSearch,omitempty"`
	DNSOptions []string `json:"dnsOptions,omitempty"`
	// GroupAdd are the extra groups of the container's user.
	GroupAdd    []string `json:"groupAdd,omitempty"`
	OomScoreAdj int      `json:"oomScoreAdj,omitempty"`
	// Healthcheck is the container's own healthcheck (nil: the image's, if any).
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`

	// UpperDir is the container's writable layer on its node (overlay2's upper
	// directory, docker inspect GraphDriver.Data.UpperDir) and StorageDriver Docker's
	// storage driver; node-local facts for the dump, never recorded in a manifest.
	UpperDir      string `json:"-"`
	StorageDriver string `json:"-"`
}

// Healthcheck is a container healthcheck (docker run --health-*, compose healthcheck:).
type Healthcheck struct {
	// Test is ["CMD", args...], ["CMD-SHELL", command] or ["NONE"].
	Test []string `json:"test,omitempty"`
	// Durations in nanoseconds (0: Docker's default).
	Interval      int64 `json:"interval,omitempty"`
	Timeout       int64 `json:"timeout,omitempty"`
	StartPeriod   int64 `json:"startPeriod,omitempty"`
	StartInterval int64 `json:"startInterval,omitempty"`
	Retries       int   `json:"retries,omitempty"`
}

// Swarm label keys Docker puts on task containers.
const (
	LabelServiceName = "com.docker.swarm.service.name"
	LabelTaskName    = "com.docker.swarm.task.name"
)

// SwarmFromLabels fills Service, Task and Slot from the swarm labels of a task container.
// A task is named SERVICE.SLOT.TASKID (replicated) or SERVICE.NODEID.TASKID (global).
func SwarmFromLabels(labels map[string]string) (service, task string, slot int) {
	service, task = labels[LabelServiceName], labels[LabelTaskName]
	if service == "" || task == "" {
		return service, task, 0
	}
	rest := strings.TrimPrefix(task, service+".")
	if i := strings.IndexByte(rest, '.'); i > 0 {
		if n, err := strconv.Atoi(rest[:i]); err == nil {
			slot = n
		}
	}
	return service, task, slot
}

// Addrs returns the container's IP addresses over all its networks.
func (s Spec) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, n := range s.Networks {
		for _, a := range []string{n.IPv4, n.IPv6} {
			if ip, err := netip.ParseAddr(a); err == nil {
				out = append(out, ip)
			}
		}
	}
	return out
}

// Inspector looks containers up on one node.
type Inspector interface {
	// Resolve returns the running container named or identified by nameOrID, or an error
	// wrapping ErrNotFound or ErrNotRunning.
	Resolve(ctx context.Context, nameOrID string) (Ref, error)
	// Spec returns what is needed to recreate the container elsewhere.
	Spec(ctx context.Context, nameOrID string) (Spec, error)
}

package sim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrConfig is wrapped by Config.Validate and ParseFaults errors.
var ErrConfig = errors.New("sim: invalid configuration")

// Config describes one simulated run. Times are simulated milliseconds unless noted.
type Config struct {
	// Containers is the number of containers (default 100).
	Containers int
	// Nodes is the number of worker nodes; container i runs on node i mod Nodes (default 10).
	Nodes int
	// Graph is the communication graph (default ring).
	Graph Graph
	// Seed seeds every random choice of the run (default 1). Same seed, same report.
	Seed uint64
	// Rounds is the number of snapshots taken one after the other; the report describes
	// the last one (default 2: a warm-up snapshot, then the measured one, so that the
	// minimal algorithm has earlier images to reuse).
	Rounds int
	// RoundGapMs is the simulated time between one round's end and the next request
	// (default 1000).
	RoundGapMs float64

	// MemMiB, when set, gives every container's memory in MiB (len = Containers) and
	// overrides MemMinMiB/MemMaxMiB (a stack of known shape, e.g. one big container
	// among small ones).
	MemMiB []float64
	// MemMinMiB and MemMaxMiB bound the containers' memory sizes, drawn log-uniformly
	// (defaults 64 and 2048).
	MemMinMiB, MemMaxMiB float64
	// Hosts is the number of machines the nodes run on: node n runs on host n mod Hosts,
	// and the nodes of a host share its disk and CPUs (0, the default: every node is its
	// own host; the benchmark lab runs its 3 nodes on 1 host).
	Hosts int
	// DiskMBps is each host's disk bandwidth in MB/s (10^6 bytes), shared equally by the
	// dumps running on the host at the same time (default 1100, measured on this machine).
	DiskMBps float64
	// DumpOverheadMs is CRIU's fixed cost per dump on top of writing pages (default 100).
	// With CPUsPerHost > 0 it is CPU time (ms of one core) that the dumps running on a
	// host share: N dumps on C cores each progress at min(1, C/N). With 0 it is a plain
	// delay, whatever else runs.
	DumpOverheadMs float64
	// CPUsPerHost is the number of cores of a host that its dumps share (default 0: not
	// modelled, every dump's overhead runs at full speed).
	CPUsPerHost float64
	// DumpStartMs is the mean of the exponentially distributed time from a dump command
	// reaching a running container's node to CRIU seizing the container (starting runc
	// and CRIU, stopping a running process tree on a loaded machine): the container keeps
	// running and talking meanwhile, and its images record the state at the seize; the
	// delay is uniform in [0, 2 x DumpStartMs] (default 200, fitted on the benchmark lab:
	// benchmarks/algorithms/calibration.json; 0: seized at once). A container the
	// algorithm froze before its dump is seized at once. It is what spreads the
	// recordings of independently triggered dumps (uncoordinated) in time.
	DumpStartMs float64
	// CommitCheckMs, CommitPerContainerMs and CommitReadMBps are the coordinator's work
	// between the last container's report and the commit record (collecting the image
	// sets, reading them for the cut check) on top of PersistMs: a fixed part, a part
	// per container, and the images' bytes read at CommitReadMBps (defaults 0: none).
	CommitCheckMs, CommitPerContainerMs, CommitReadMBps float64
	// ClientMs is the client's own time around a snapshot (process start, stack
	// resolution, printing the result), added to the reported latency so it compares
	// with a CLI's wall time (default 0).
	ClientMs float64
	// CRIULock models CRIU's own network lock: with --tcp-established, CRIU drops every
	// packet of the container it dumps from before it reads the sockets until the dump
	// ends (default true, as on this project's nodes).
	CRIULock bool
	// LockMs, FreezeMs: time to install/remove network lock rules and to freeze/thaw a
	// container (defaults 2 and 5).
	LockMs, FreezeMs float64
	// LockCPUMs, when positive and CPUsPerHost is set, makes every lock and unlock CPU
	// work of LockCPUMs on its host's cores (shared with the dumps' fixed costs and the
	// other locks, like an agent's nftables transaction) instead of a fixed LockMs
	// (default 0: LockMs).
	LockCPUMs float64
	// PersistMs is a durable write of the coordinator (etcd) (default 5).
	PersistMs float64
	// WorkerSlots is how many container actions (lock, unlock, freeze, thaw, dump) one
	// node's worker runs at once; the containers' further actions wait for a slot in
	// arrival order, and the wait counts in the action's time (default 0: no limit, every
	// container's actions run on their own, as the agent's goroutine per container
	// issues them).
	WorkerSlots int

	// NetDelayMs is the one-way control-message delay between nodes, NetJitterMs the
	// uniform jitter added to it (defaults 0.25 and 0.1; messages may be reordered).
	// Messages between containers of the same node take a tenth of it.
	NetDelayMs, NetJitterMs float64
	// SendCostMs is the time a process needs to hand one message to the transport; a
	// process sends one message after the other, so a coordinator fanning out to 10,000
	// containers takes 10,000 x SendCostMs (default 0.02, a NATS publish).
	SendCostMs float64
	// DataDelayMs is the one-way delay of application bytes (default 0.25).
	DataDelayMs float64
	// TrafficBytesPerMs is the mean application traffic per connection direction while
	// the sender runs (default 1000, i.e. 1 MB/s; each direction draws 0.5-1.5x).
	TrafficBytesPerMs float64
	// SendBufferBytes caps unacknowledged bytes per direction (TCP send buffer; default 4 MiB).
	SendBufferBytes float64
	// IdleFraction is the fraction of connections that carry no traffic at all (open but
	// quiet, what the minimal algorithm exploits: a container whose connections are all
	// quiet reuses its earlier images; default 0.5).
	IdleFraction float64
	// AllToAllMax is the largest container count for which all-to-all is complete;
	// AllToAllDegree is the degree of the bounded graph used above it (defaults 64, 16).
	AllToAllMax, AllToAllDegree int
	// StarSize is the size of each star of the star graph (a server and StarSize-1
	// clients; default 0: one star of every container).
	StarSize int
	// AllPeers gives every container every other container as a peer in the snapshot
	// request, as the coordinator does today (it does not know who talks to whom:
	// coordinator/snapshot.go, participants), whatever Graph says; application traffic
	// still flows along Graph only (default false: the peers are Graph's neighbours).
	// The request then holds Containers x (Containers - 1) peers: meant for stacks of
	// tens or hundreds of containers.
	AllPeers bool
	// PipelineStages is the number of stages of the pipeline graph (default 10).
	PipelineStages int

	// TickMs is the logical tick period of every algorithm instance (default 100).
	TickMs float64
	// TimeoutTicks and WatchdogGraceTicks configure the coordinator (algorithms.Config;
	// defaults 600 and 100: a minute and 10 s at the default tick).
	TimeoutTicks, WatchdogGraceTicks uint64

	// ClientRetryMs: the client repeats an undecided snapshot request this often
	// (default 5000).
	ClientRetryMs float64

	// Faults to inject during the measured (last) round.
	Faults Faults
}

// Faults lists the faults injected into the measured round. Each fault starts at a
// seeded random time within FaultWindowMs after the round's request.
type Faults struct {
	// WorkerCrashes is the number of worker agents that crash (distinct random nodes);
	// each restarts after WorkerDownMs (default 2000) with recovering container roles.
	WorkerCrashes int
	WorkerDownMs  float64
	// Loss is the probability that a control message is lost; Dup that it is delivered twice.
	Loss, Dup float64
	// Partitions is the number of partitions; each isolates PartitionNodes random nodes
	// (default 1) from the coordinator and the other nodes for PartitionMs (default 3000),
	// control messages and application bytes alike.
	Partitions     int
	PartitionNodes int
	PartitionMs    float64
	// CoordinatorCrash crashes the coordinator once; it recovers from its last persisted
	// record after CoordinatorDownMs (default 1000).
	CoordinatorCrash  bool
	CoordinatorDownMs float64
	// WindowMs is the window after the request in which faults start (default 2000).
	WindowMs float64
}

// Any reports whether any fault is configured.
func (f Faults) Any() bool {
	return f.WorkerCrashes > 0 || f.Loss > 0 || f.Dup > 0 || f.Partitions > 0 || f.CoordinatorCrash
}

// String renders the faults in ParseFaults syntax ("none" if none).
func (f Faults) String() string {
	var p []string
	if f.WorkerCrashes > 0 {
		p = append(p, fmt.Sprintf("worker-crash=%d", f.WorkerCrashes))
	}
	if f.Loss > 0 {
		p = append(p, "loss="+strconv.FormatFloat(f.Loss, 'g', -1, 64))
	}
	if f.Dup > 0 {
		p = append(p, "dup="+strconv.FormatFloat(f.Dup, 'g', -1, 64))
	}
	if f.Partitions > 0 {
		p = append(p, fmt.Sprintf("partition=%d", f.Partitions))
	}
	if f.CoordinatorCrash {
		p = append(p, "coordinator-crash=1")
	}
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ",")
}

// ParseFaults parses a comma-separated fault list: worker-crash=N, loss=P, dup=P,
// partition=N, partition-nodes=N, partition-ms=MS, coordinator-crash=1,
// worker-down-ms=MS, coordinator-down-ms=MS, window-ms=MS. "" and "none" mean no faults.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	if s == "" || s == "none" {
		return f, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			v = "1"
		}
		num, err := strconv.ParseFloat(v, 64)
		if err != nil || num < 0 {
			return f, fmt.Errorf("%w: fault %q: value %q is not a non-negative number", ErrConfig, k, v)
		}
		switch k {
		case "worker-crash":
			f.WorkerCrashes = int(num)
		case "worker-down-ms":
			f.WorkerDownMs = num
		case "loss":
			f.Loss = num
		case "dup":
			f.Dup = num
		case "partition":
			f.Partitions = int(num)
		case "partition-nodes":
			f.PartitionNodes = int(num)
		case "partition-ms":
			f.PartitionMs = num
		case "coordinator-crash":
			f.CoordinatorCrash = num != 0
		case "coordinator-down-ms":
			f.CoordinatorDownMs = num
		case "window-ms":
			f.WindowMs = num
		default:
			return f, fmt.Errorf("%w: unknown fault %q (want worker-crash, loss, dup, partition, partition-nodes, partition-ms, coordinator-crash, worker-down-ms, coordinator-down-ms, window-ms)", ErrConfig, k)
		}
	}
	if f.Loss >= 1 || f.Dup >= 1 {
		return f, fmt.Errorf("%w: loss and dup are probabilities below 1", ErrConfig)
	}
	return f, nil
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Containers: 100, Nodes: 10, Graph: Ring, Seed: 1, Rounds: 2, RoundGapMs: 1000,
		MemMinMiB: 64, MemMaxMiB: 2048, DiskMBps: 1100, DumpOverheadMs: 100, DumpStartMs: 200, CRIULock: true,
		LockMs: 2, FreezeMs: 5, PersistMs: 5,
		NetDelayMs: 0.25, NetJitterMs: 0.1, SendCostMs: 0.02, DataDelayMs: 0.25,
		TrafficBytesPerMs: 1000, SendBufferBytes: 4 << 20, IdleFraction: 0.5,
		AllToAllMax: 64, AllToAllDegree: 16, PipelineStages: 10,
		TickMs: 100, TimeoutTicks: 600, WatchdogGraceTicks: 100, ClientRetryMs: 5000,
	}
}

// withFaultDefaults fills zero fault durations.
func (c Config) withFaultDefaults() Config {
	f := &c.Faults
	if f.WorkerDownMs == 0 {
		f.WorkerDownMs = 2000
	}
	if f.PartitionNodes == 0 {
		f.PartitionNodes = 1
	}
	if f.PartitionMs == 0 {
		f.PartitionMs = 3000
	}
	if f.CoordinatorDownMs == 0 {
		f.CoordinatorDownMs = 1000
	}
	if f.WindowMs == 0 {
		f.WindowMs = 2000
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Containers < 2:
		return fmt.Errorf("%w: containers = %d, need at least 2", ErrConfig, c.Containers)
	case c.Nodes < 1:
		return fmt.Errorf("%w: nodes = %d, need at least 1", ErrConfig, c.Nodes)
	case c.Rounds < 1:
		return fmt.Errorf("%w: rounds = %d, need at least 1", ErrConfig, c.Rounds)
	case c.MemMinMiB <= 0 || c.MemMaxMiB < c.MemMinMiB:
		return fmt.Errorf("%w: memory range %g..%g MiB", ErrConfig, c.MemMinMiB, c.MemMaxMiB)
	case c.MemMiB != nil && len(c.MemMiB) != c.Containers:
		return fmt.Errorf("%w: %d memory sizes for %d containers", ErrConfig, len(c.MemMiB), c.Containers)
	case c.WorkerSlots < 0:
		return fmt.Errorf("%w: worker slots = %d, need 0 (no limit) or more", ErrConfig, c.WorkerSlots)
	case c.Hosts < 0 || c.CPUsPerHost < 0 || c.DumpStartMs < 0 || c.CommitCheckMs < 0 || c.ClientMs < 0 ||
		c.CommitPerContainerMs < 0 || c.CommitReadMBps < 0:
		return fmt.Errorf("%w: hosts, cpus per host, dump start, commit check and client times must not be negative", ErrConfig)
	case c.DiskMBps <= 0:
		return fmt.Errorf("%w: disk bandwidth %g MB/s", ErrConfig, c.DiskMBps)
	case c.ClientRetryMs <= 0:
		return fmt.Errorf("%w: client retry %g ms", ErrConfig, c.ClientRetryMs)
	case c.TickMs <= 0:
		return fmt.Errorf("%w: tick %g ms", ErrConfig, c.TickMs)
	case c.IdleFraction < 0 || c.IdleFraction > 1:
		return fmt.Errorf("%w: idle fraction %g not in [0,1]", ErrConfig, c.IdleFraction)
	case c.Faults.WorkerCrashes > c.Nodes:
		return fmt.Errorf("%w: %d worker crashes but only %d nodes", ErrConfig, c.Faults.WorkerCrashes, c.Nodes)
	}
	for _, g := range Graphs {
		if g == c.Graph {
			return nil
		}
	}
	return fmt.Errorf("%w: unknown graph %q (want one of %v)", ErrConfig, c.Graph, Graphs)
}

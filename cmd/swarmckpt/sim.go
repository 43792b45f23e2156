package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"os"
	"runtime/pprof"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/sim"
)

const simUsage = `Usage: swarmckpt sim --algorithm A [--containers N] [--nodes M] [--graph G] [--seed S] [--faults F]

Runs the real checkpoint algorithm A in a deterministic discrete-event simulation (no
containers are touched) and prints the measured snapshot: latency, compute downtime per
container, connection hold time, control messages, bytes dumped, and the cut checker's
verdict. Times are simulated; the same seed gives the same result.

  swarmckpt sim --algorithm chandy-lamport --containers 10000 --nodes 1000 --graph all-to-all
  swarmckpt sim --algorithm blocking --containers 50 --nodes 5 --faults worker-crash=1,loss=0.01
  swarmckpt sim --algorithm all --containers 1000 --nodes 100     one line per algorithm
  swarmckpt sim --algorithm all --calibration benchmarks/algorithms/calibration.json \
      --containers 30 --nodes 3 --graph star --mem-min 2 --mem-max 2 --idle 0 --all-peers
                                        the lab's 30-container echo stack, as calibrated

Graphs: ring, all-to-all (degree-bounded above 64 containers), tiers, pipeline, star.
Faults (comma-separated): worker-crash=N, loss=P, dup=P, partition=N, partition-nodes=N,
partition-ms=MS, coordinator-crash=1, worker-down-ms=MS, coordinator-down-ms=MS, window-ms=MS.
The last output line of each run is machine-readable:
  BENCH sim algorithm=.. graph=.. containers=.. nodes=.. latency_ms=.. downtime_p99_ms=.. messages=.. consistent=true|false|n/a
Exit code 1 if an invariant was violated (e.g. a container left frozen).`

func runSim(ctx context.Context, c *cli, args []string) error {
	cfg := sim.DefaultConfig()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	algName := fs.String("algorithm", "", "algorithm to run, or 'all'")
	fs.IntVar(&cfg.Containers, "containers", cfg.Containers, "number of containers")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of worker nodes (container i runs on node i mod nodes)")
	graph := fs.String("graph", string(cfg.Graph), "communication graph: ring, all-to-all, tiers, pipeline, star")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	faults := fs.String("faults", "", "faults injected into the measured snapshot (see above)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "snapshots taken one after the other; the last is reported")
	fs.Float64Var(&cfg.IdleFraction, "idle", cfg.IdleFraction, "fraction of connections that carry no traffic")
	fs.Float64Var(&cfg.TrafficBytesPerMs, "traffic", cfg.TrafficBytesPerMs, "mean bytes per ms per connection direction")
	fs.Float64Var(&cfg.MemMinMiB, "mem-min", cfg.MemMinMiB, "smallest container memory, MiB")
	fs.Float64Var(&cfg.MemMaxMiB, "mem-max", cfg.MemMaxMiB, "largest container memory, MiB")
	fs.Float64Var(&cfg.DiskMBps, "disk-mbps", cfg.DiskMBps, "disk bandwidth per node, MB/s, shared by its dumps")
	fs.BoolVar(&cfg.CRIULock, "criu-lock", cfg.CRIULock, "model CRIU's own network lock during each dump (--tcp-established)")
	fs.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "machines the nodes run on (node n on host n mod hosts; 0: every node its own host); a host's disk and CPUs are shared by its dumps")
	fs.Float64Var(&cfg.CPUsPerHost, "cpus-per-host", cfg.CPUsPerHost, "cores per host shared by its dumps' fixed cost (and its locks, with a calibration's lock_cpu_ms) (0: not modelled)")
	fs.Float64Var(&cfg.DumpStartMs, "dump-start-ms", cfg.DumpStartMs, "mean delay from a dump command to CRIU seizing the container (exponential)")
	fs.BoolVar(&cfg.AllPeers, "all-peers", cfg.AllPeers, "make every container a peer of every other in the snapshot request, as the coordinator does (traffic still follows --graph; containers x (containers-1) peers)")
	fs.IntVar(&cfg.WorkerSlots, "worker-slots", cfg.WorkerSlots, "container actions (lock, unlock, freeze, thaw, dump) one node's worker runs at once, the others wait (0: no limit)")
	calib := fs.String("calibration", "", "read the model's parameters measured on a lab from this JSON file (benchmarks/algorithms/calibration.json); flags given explicitly override it")
	quiet := fs.Bool("quiet", false, "print only the BENCH line")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the simulator itself to this file (go tool pprof)")
	if err := c.parseNoArgs(fs, simUsage, "sim", args); err != nil {
		return err
	}
	if *calib != "" {
		cal, err := sim.LoadCalibration(*calib)
		if err != nil {
			return usagef("--calibration: %v", err)
		}
		explicit := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
		keep := cfg
		cal.Apply(&cfg)
		if explicit["hosts"] {
			cfg.Hosts = keep.Hosts
		}
		if explicit["cpus-per-host"] {
			cfg.CPUsPerHost = keep.CPUsPerHost
		}
		if explicit["dump-start-ms"] {
			cfg.DumpStartMs = keep.DumpStartMs
		}
		if explicit["disk-mbps"] {
			cfg.DiskMBps = keep.DiskMBps
		}
		if explicit["worker-slots"] {
			cfg.WorkerSlots = keep.WorkerSlots
		}
	}
	cfg.Graph = sim.Graph(*graph)
	f, err := sim.ParseFaults(*faults)
	if err != nil {
		return usagef("%v", err)
	}
	cfg.Faults = f
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	var run []algorithms.Algorithm
	if *algName == "all" {
		run = registry.All()
		sort.Slice(run, func(i, j int) bool { return run[i].Name() < run[j].Name() })
	} else {
		a, err := registry.Lookup(*algName)
		if err != nil {
			names := registry.Names()
			sort.Strings(names)
			return usagef("--algorithm %q: want one of %s or all", *algName, strings.Join(names, ", "))
		}
		run = append(run, a)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	violated := 0
	for _, a := range run {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep, err := sim.Run(cfg, a)
		if err != nil {
			return fmt.Errorf("simulate %s: %w", a.Name(), err)
		}
		if *quiet {
			fmt.Fprintln(c.stdout, rep.BenchLine())
		} else {
			rep.Write(c.stdout)
		}
		violated += len(rep.Violations)
	}
	if violated > 0 {
		return fmt.Errorf("%d invariant violation(s) in the simulated run(s); see above", violated)
	}
	return nil
}

// startCPUProfile profiles the process into path until the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// Command recordscale measures the snapshot record at scale (issue #20, "Scale of the
// record"): a coordinator on a real embedded etcd (TLS, client certificates, etcd's
// default request limit of 1.5 MiB and 128 operations per transaction) snapshots a
// stack of N containers spread over fake node agents (worker.Fake behind agents on an
// in-memory bus), then `ls`, `inspect` and `rm` it through the coordinator's API.
// Each size runs in the same process against the same etcd, so the ratios between
// sizes (the first size is the baseline) are what to read. It also times the store
// alone on a realistic record (20 image files per container, as CRIU writes): Commit,
// Headers (ls), Get (inspect) and Delete (rm).
//
// It is a benchmark, not a product path. Usage:
//
//	go run ./benchmarks/recordscale [--sizes 50,5000] [--nodes 50] [--reps 3] [--cpuprofile FILE]
//
// Output, per size and operation, the median over the repetitions in ms, and per size
// the store's record: the manifest's size as one JSON value (what the record was
// before the parts), its header's size and its number of part keys:
//
//	BENCH recordscale path=coordinator|store containers=N op=OP median_ms=.. ratio=..
//	BENCH recordscale path=store containers=N whole_manifest_bytes=.. header_bytes=.. part_keys=..
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

func main() {
	sizesF := flag.String("sizes", "50,5000", "container counts, comma-separated; the first is the baseline of the ratios")
	nodes := flag.Int("nodes", 50, "fake node agents the containers are spread over")
	reps := flag.Int("reps", 3, "repetitions per size")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "recordscale: --cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	var sizes []int
	for _, s := range strings.Split(*sizesF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "recordscale: --sizes %q: give positive container counts, e.g. 50,5000\n", *sizesF)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if err := run(sizes, *nodes, *reps); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "recordscale:", err)
		os.Exit(1)
	}
}

func run(sizes []int, nodes, reps int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "recordscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: dir, Log: quiet})
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer srv.Close()
	cr := srv.EtcdCredentials()
	st, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: srv.EtcdEndpoints(), CAFile: cr.CA, CertFile: cr.Cert, KeyFile: cr.Key})
	if err != nil {
		return err
	}
	defer st.Close()

	net := bus.NewNetwork()
	resolver := stack.Static{}
	for _, n := range sizes {
		resolver[stackName(n)] = makeStack(n, nodes)
	}
	svc, err := coordinator.New(coordinator.Config{Name: "bench", Bus: net.Connect(), Store: st, Resolver: resolver,
		Algorithms: func(name string) (algorithms.Algorithm, error) { return registry.Lookup(name) },
		TickPeriod: 10 * time.Millisecond, SnapshotTimeout: 10 * time.Minute, PlanTimeout: time.Minute,
		WorkerTimeout: time.Minute, Log: quiet})
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = svc.Run(rctx) }()
	for i := range nodes {
		node := fmt.Sprintf("node-%d", i)
		ex := worker.NewFake(node)
		a, err := agent.New(agent.Config{Node: node, Bus: net.Connect(), Worker: ex.Roles(),
			Algorithms: func(name string) (algorithms.Algorithm, error) { return registry.Lookup(name) },
			TickPeriod: 10 * time.Millisecond, HeartbeatPeriod: 200 * time.Millisecond, Log: quiet})
		if err != nil {
			return err
		}
		go func() { _ = a.Run(rctx) }()
	}
	cli := api.Client{T: net.Connect()}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := api.Call[api.StatusResult](ctx, cli, api.OpStatus, api.StatusRequest{})
		if err == nil && len(s.Workers) == nodes {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %d fake agents did not all show up (last: %v)", nodes, err)
		}
	}

	ops := []string{"snapshot", "ls", "inspect", "rm"}
	coord := map[int]map[string]time.Duration{}
	for _, n := range sizes {
		times := map[string][]time.Duration{}
		for r := range reps {
			id := fmt.Sprintf("%s-%d", stackName(n), r)
			t0 := time.Now()
			res, err := api.Call[api.SnapshotResult](ctx, cli, api.OpSnapshot, api.SnapshotRequest{ID: id, Stack: stackName(n)})
			if err != nil {
				return fmt.Errorf("snapshot of %d containers: %w", n, err)
			}
			times["snapshot"] = append(times["snapshot"], time.Since(t0))
			if res.Snapshot == nil || res.Snapshot.State != store.StateCommitted {
				return fmt.Errorf("snapshot of %d containers not committed: %+v", n, res.Snapshot)
			}
			t0 = time.Now()
			ls, err := api.Call[api.ListResult](ctx, cli, api.OpList, api.ListRequest{})
			if err != nil {
				return fmt.Errorf("ls: %w", err)
			}
			times["ls"] = append(times["ls"], time.Since(t0))
			if len(ls.Snapshots) != 1 || ls.Snapshots[0].NContainers != n {
				return fmt.Errorf("ls after the snapshot of %d containers: %d snapshots", n, len(ls.Snapshots))
			}
			t0 = time.Now()
			in, err := api.Call[api.InspectResult](ctx, cli, api.OpInspect, api.InspectRequest{ID: id})
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			times["inspect"] = append(times["inspect"], time.Since(t0))
			if len(in.Snapshot.Containers) != n {
				return fmt.Errorf("inspect of %d containers shows %d", n, len(in.Snapshot.Containers))
			}
			t0 = time.Now()
			if _, err := api.Call[api.RemoveResult](ctx, cli, api.OpRemove, api.RemoveRequest{ID: id}); err != nil {
				return fmt.Errorf("rm: %w", err)
			}
			times["rm"] = append(times["rm"], time.Since(t0))
		}
		coord[n] = medians(times)
	}
	report("coordinator", sizes, ops, coord)

	sops := []string{"commit", "headers", "get", "delete"}
	sres := map[int]map[string]time.Duration{}
	for _, n := range sizes {
		times := map[string][]time.Duration{}
		for r := range reps {
			m := storetest.BigManifest(fmt.Sprintf("store-%d-%d", n, r), "store", n, 20, 0)
			if err := st.Create(ctx, m); err != nil {
				return err
			}
			lock, err := st.LockStack(ctx, "store", "bench", time.Minute)
			if err != nil {
				return err
			}
			t0 := time.Now()
			if err := st.Commit(ctx, m, lock); err != nil {
				return fmt.Errorf("store commit of %d containers: %w", n, err)
			}
			times["commit"] = append(times["commit"], time.Since(t0))
			_ = lock.Unlock(ctx)
			if r == 0 {
				whole, _ := json.Marshal(m)
				h, err := st.Client().Get(ctx, etcdstore.DefaultPrefix+"/snapshots/"+m.ID)
				if err != nil || len(h.Kvs) == 0 {
					return fmt.Errorf("read the header of %s: %v", m.ID, err)
				}
				p, err := st.Client().Get(ctx, etcdstore.DefaultPrefix+"/parts/"+m.ID+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
				if err != nil {
					return err
				}
				fmt.Printf("BENCH recordscale path=store containers=%d whole_manifest_bytes=%d header_bytes=%d part_keys=%d\n",
					n, len(whole), len(h.Kvs[0].Value), len(p.Kvs))
			}
			t0 = time.Now()
			if _, err := st.Headers(ctx, ""); err != nil {
				return err
			}
			times["headers"] = append(times["headers"], time.Since(t0))
			t0 = time.Now()
			if _, err := st.Get(ctx, m.ID); err != nil {
				return err
			}
			times["get"] = append(times["get"], time.Since(t0))
			t0 = time.Now()
			if err := st.Delete(ctx, m.ID); err != nil {
				return err
			}
			times["delete"] = append(times["delete"], time.Since(t0))
		}
		sres[n] = medians(times)
	}
	report("store", sizes, sops, sres)
	return nil
}

func stackName(n int) string { return fmt.Sprintf("scale%d", n) }

// makeStack spreads n containers of 10 services over nodes fake nodes.
func makeStack(n, nodes int) *stack.Stack {
	st := &stack.Stack{Name: stackName(n)}
	for i := range n {
		svc := fmt.Sprintf("%s_svc%d", st.Name, i%10)
		st.Containers = append(st.Containers, stack.Container{Service: svc, Slot: i/10 + 1, Node: fmt.Sprintf("node-%d", i%nodes),
			ContainerID: fmt.Sprintf("%s-c%05d", st.Name, i), Image: "swarmckpt/bank:dev",
			IPs: []string{fmt.Sprintf("10.%d.%d.%d", 1+i>>16, i>>8&255, i&255)}, Networks: []string{st.Name + "_net"}})
	}
	return st
}

func medians(times map[string][]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for op, ts := range times {
		slices.Sort(ts)
		out[op] = ts[len(ts)/2]
	}
	return out
}

func report(path string, sizes []int, ops []string, res map[int]map[string]time.Duration) {
	base := res[sizes[0]]
	for _, n := range sizes {
		for _, op := range ops {
			d := res[n][op]
			fmt.Printf("BENCH recordscale path=%s containers=%d op=%s median_ms=%.1f ratio=%.1f\n", path, n, op,
				float64(d.Microseconds())/1000, float64(d)/float64(max(base[op], 1)))
		}
	}
}

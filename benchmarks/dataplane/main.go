// Command dataplane benchmarks the worker's data path against Docker's checkpoint path
// and raw runc on the same machine, in one run, on real lab nodes. It prints one BENCH
// line per case (see README in docs/dataplane.md):
//
//	BENCH dump size_mib=N docker_s=.. runc_s=.. ours_s=.. vs_docker=.. vs_runc=..
//	BENCH restore size_mib=N docker_s=.. ours_s=.. vs_docker=.. floor_s=.. docker_vs_floor=..
//	BENCH migrate size_mib=N mode=cold downtime_s=.. dump_s=.. send_s=.. restore_s=.. worker_rss_mib=..
//	BENCH migrate size_mib=N mode=cold-streamed downtime_s=.. dump_s=.. criu_s=.. restore_s=.. worker_rss_mib=..
//	BENCH migrate size_mib=N mode=cold-streamed-tls ... (the same between workers with TLS;
//	                                      cold-direct-tls likewise, CRIU's TLS for the pages)
//	BENCH migrate size_mib=N mode=cold-direct-arrival ... (cold-direct between workers that hash
//	                                      the received pages on arrival, not after the restore)
//	BENCH migrate size_mib=N mode=post-copy downtime_s=.. total_s=.. vs_cold=..
//	BENCH migrate-product size_mib=N copy=MODE downtime_s=.. vs_docker_path=..x vs_raw=.. (--cases product, --lab; product.go)
//	BENCH summary target=NAME size_mib=N value=.. want=.. met=yes|no|not-measured (the targets, at the end)
//
// Every line ends with mem_touch_s: the time to write N MiB of fresh memory right
// before the case (touch), this VM's memory state, which moves the times 10x.
// With --reps K every case runs K times (the migration modes interleaved), and each
// size ends with summary lines:
//
//	BENCH dump-summary size_mib=N reps=K vs_docker_min=.. vs_docker_median=.. vs_docker_max=.. vs_runc_min=.. ...
//	BENCH restore-summary size_mib=N reps=K vs_docker_min=.. vs_docker_median=.. vs_docker_max=.. docker_vs_floor_median=..
//	BENCH migrate-summary size_mib=N mode=M reps=K downtime_min_s=.. downtime_median_s=.. downtime_max_s=..
//
// Usage: go run ./benchmarks/dataplane --swarmckpt BIN --node SOCK --node SOCK [--sizes 64,256,1024]
// [--cases dump,restore,cold,cold-streamed,cold-direct,post-copy,cold-streamed-tls,cold-direct-tls,cold-direct-arrival,product]
// [--reps K] [--logs DIR] [--lab NAME --workloads DIR --dptest BIN]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

type node struct {
	host, execRoot, dataRoot string
}

func (n node) docker(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", n.host}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (n node) runcRoot() string { return filepath.Join(n.execRoot, "runtime-runc", "moby") }

type nodesFlag []string

func (f *nodesFlag) String() string     { return strings.Join(*f, ",") }
func (f *nodesFlag) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	var socks nodesFlag
	bin := flag.String("swarmckpt", "", "swarmckpt binary (runs the workers)")
	sizes := flag.String("sizes", "64,256,1024", "container memory sizes in MiB")
	image := flag.String("image", "swarmckpt/dptest:dev", "image with a memhog mode: IMAGE memhog MIB")
	cases := flag.String("cases", "dump,restore,cold,cold-streamed,cold-direct,post-copy,product", "cases to run (comma separated; also cold-streamed-tls, cold-direct-tls, cold-direct-arrival, product: needs --lab)")
	flag.StringVar(&logDir, "logs", "", "keep the workers' logs in this directory")
	reps := flag.Int("reps", 1, "run every case this many times (migration modes interleaved) and print min/median/max summary lines")
	flag.Var(&socks, "node", "Docker socket of a lab node (twice)")
	flag.StringVar(&productLab, "lab", "", "the lab whose nodes --node names (its coordinator runs the product case: `swarmckpt migrate`)")
	flag.StringVar(&workloads, "workloads", "build/workloads", "the workload images (memhog) for the product case")
	flag.StringVar(&dptest, "dptest", "build/dptest", "the test image's binary, run as a plain process for the product case's raw CRIU floor")
	flag.Parse()
	if len(socks) < 2 || *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: dataplane --swarmckpt BIN --node unix:///...sock --node unix:///...sock")
		os.Exit(2)
	}
	if *reps < 1 {
		fmt.Fprintln(os.Stderr, "dataplane: --reps must be at least 1")
		os.Exit(2)
	}
	if err := run(*bin, socks, *sizes, *image, *cases, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		os.Exit(1)
	}
}

// logDir keeps the workers' logs when set (--logs).
var logDir string

// productLab, workloads, dptest: the product case's lab, workload images and raw
// process binary (--lab, --workloads, --dptest; product.go).
var productLab, workloads, dptest string

func run(bin string, socks []string, sizes, image, cases string, reps int) error {
	want := map[string]bool{}
	for _, c := range strings.Split(cases, ",") {
		want[strings.TrimSpace(c)] = true
	}
	var nodes []node
	for _, s := range socks {
		n := node{host: s, execRoot: filepath.Join(filepath.Dir(strings.TrimPrefix(s, "unix://")), "exec")}
		root, err := n.docker("info", "--format", "{{.DockerRootDir}}")
		if err != nil {
			return err
		}
		n.dataRoot = root
		nodes = append(nodes, n)
	}
	ctx := context.Background()
	// The benchmark's workers share one token (they send sets to each other).
	tokDir, err := os.MkdirTemp("", "dpbench-token-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tokDir)
	tokenFile := filepath.Join(tokDir, "worker.token")
	token, err := worker.WriteNewTokenFile(tokenFile)
	if err != nil {
		return err
	}
	var workers []*worker.Client
	var pids []int
	for i, n := range nodes {
		c, pid, stop, err := startWorker(bin, n, fmt.Sprintf("bench-%d", i+1), tokenFile, token)
		if err != nil {
			return err
		}
		defer stop()
		workers = append(workers, c)
		pids = append(pids, pid)
	}
	a, b := workers[0], workers[1]
	bi, err := b.Info(ctx)
	if err != nil {
		return err
	}
	plain := pair{a: a, b: b, bAddr: bi.Addr, pids: pids}
	// cold-streamed-tls, cold-direct-tls: the same migrations as cold-streamed and
	// cold-direct, between a second pair of workers (on the same nodes) that run with
	// TLS: the price of encrypting the stream (Go's TLS), or the pages (CRIU's TLS).
	// cold-direct-arrival: cold-direct between a second pair of workers that hash the
	// received pages while their page server writes them (worker --page-digests
	// on-arrival), where the default hashes them after the restore.
	var arrival pair
	if want["cold-direct-arrival"] {
		if arrival, err = startPair(bin, nodes, "bench-arr", tokenFile, token, "--page-digests", "on-arrival"); err != nil {
			return err
		}
		defer arrival.stop()
	}
	var withTLS pair
	if want["cold-streamed-tls"] || want["cold-direct-tls"] {
		if withTLS, err = startTLSPair(bin, nodes, tokDir, tokenFile, token); err != nil {
			return err
		}
		defer withTLS.stop()
	}
	stamp := time.Now().Format("150405")
	// cleanups remove the containers of the case being measured, last first: right
	// after its line is printed (flush), and when run returns. A memhog left running
	// re-hashes its memory every second: the 64 and 256 MiB cases' containers, and the
	// 1 GiB ones of the cases before, used to keep the machine at a load of 10-20 during
	// the 1 GiB migrations (run 14 in RESULTS.md).
	var cleanups []func()
	flush := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		cleanups = nil
	}
	defer flush()
	// The targets (product.go), printed at the end.
	sum := summary{product: map[int]map[string]time.Duration{}, dumpVsRunc: map[int]float64{}, restoreVsFloor: map[int]float64{},
		postCopy: map[int]time.Duration{}, coldDirect: map[int]time.Duration{}}
	var sizeList []int
	var prod *product
	if want["product"] && productLab == "" {
		fmt.Fprintln(os.Stderr, "# SKIPPED: the product case (swarmckpt migrate) needs --lab NAME, the lab whose nodes --node names")
	} else if want["product"] {
		if prod, err = newProduct(bin, productLab, workloads, dptest, nodes); err != nil {
			return err
		}
	}
	for _, s := range strings.Split(sizes, ",") {
		mib, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("bad size %q", s)
		}
		sizeList = append(sizeList, mib)
		n := nodes[0]
		coldDowntime := time.Duration(0)
		// downtimes (and post-copy's totals) per mode over the repetitions (--reps).
		downtimes, totals := map[string][]time.Duration{}, map[string][]time.Duration{}
		// oneCallMigration times a cold migration whose dump and transfer are one call
		// (dumpFn on node 1, into node 2), then the restore on node 2, and prints its line.
		// dropSource: the call leaves a set on node 1, dropped after the timing.
		oneCallMigration := func(mode, mname string, dropSource bool, p pair, dumpFn func(name string) (*imageset.Manifest, error)) error {
			a, b, pids := p.a, p.b, p.pids
			touched := settle(mib)
			cleanups = append(cleanups, func() { nodes[1].docker("rm", "-f", mname) }, func() { n.docker("rm", "-f", mname) })
			if err := memhog(n, mname, image, mib); err != nil {
				return err
			}
			c0, d0 := cpu(pids[0]), cpu(pids[1])
			t0 := time.Now()
			m, err := dumpFn(mname)
			if err != nil {
				return err
			}
			tDump := time.Since(t0)
			t1 := time.Now()
			if _, err := b.Restore(ctx, mname, worker.RestoreOptions{}); err != nil {
				return err
			}
			tRestore := time.Since(t1)
			downtime := time.Since(t0)
			fmt.Printf("BENCH migrate size_mib=%d mode=%s downtime_s=%.3f dump_s=%.3f criu_s=%.3f criu_cpu_s=%.2f restore_s=%.3f worker_rss_mib=%.1f src_cpu_s=%.2f dst_cpu_s=%.2f mem_touch_s=%.3f\n",
				mib, mode, downtime.Seconds(), tDump.Seconds(), m.DumpSeconds, m.DumpCPUSeconds, tRestore.Seconds(), max(hwm(pids[0]), hwm(pids[1])),
				cpu(pids[0])-c0, cpu(pids[1])-d0, touched.Seconds())
			downtimes[mode] = append(downtimes[mode], downtime)
			if dropSource {
				_ = a.DropSet(ctx, mname)
			}
			flush()
			return nil
		}
		// dump and restore, --reps times (ratios per run; a summary line with --reps > 1).
		ratios := map[string][]float64{}
		for r := 0; r < reps && (want["dump"] || want["restore"]); r++ {
			sfx := stamp
			if reps > 1 {
				sfx = fmt.Sprintf("%s-r%d", stamp, r+1)
			}
			names := map[string]string{}
			for _, kind := range []string{"docker", "runc", "ours"} {
				name := fmt.Sprintf("bench-%s-%d-%s", kind, mib, sfx)
				names[kind] = name
				cleanups = append(cleanups, func() { n.docker("rm", "-f", name) })
			}
			// Each memhog starts right before its own dump: a memhog re-hashes its memory
			// all the time (1 GiB: most of a core), so memhogs started together made the
			// first dump (Docker's) run beside two busy ones and ours beside none.
			touched := map[string]time.Duration{}
			hog := func(kind string) error {
				touched[kind] = settle(mib)
				return memhog(n, names[kind], image, mib)
			}
			// dump: docker checkpoint create (exit) vs raw runc checkpoint vs the worker.
			if err := hog("docker"); err != nil {
				return err
			}
			t0 := time.Now()
			if _, err := n.docker("checkpoint", "create", names["docker"], "cp"); err != nil {
				return err
			}
			dockerDump := time.Since(t0)
			if err := hog("runc"); err != nil {
				return err
			}
			id, _ := n.docker("inspect", "-f", "{{.Id}}", names["runc"])
			rdir := filepath.Join(n.dataRoot, "swarmckpt", "bench-runc-"+names["runc"])
			os.MkdirAll(rdir+"/work", 0o700)
			t0 = time.Now()
			if out, err := exec.Command("runc", "--root", n.runcRoot(), "checkpoint", "--image-path", rdir+"/images",
				"--work-path", rdir+"/work", "--tcp-established", id).CombinedOutput(); err != nil {
				return fmt.Errorf("runc checkpoint: %w: %s", err, out)
			}
			runcDump := time.Since(t0)
			set := names["ours"]
			if err := hog("ours"); err != nil {
				return err
			}
			t0 = time.Now()
			if _, err := a.Dump(ctx, names["ours"], set, false); err != nil {
				return err
			}
			oursDump := time.Since(t0)
			// runc's images go only now: deleted before our dump, their page cache was
			// the memory our dump wrote into, already backed by the VM's host, while
			// runc's dump had to fault fresh memory in (1 GiB: ours 1.1 s vs runc 5-8 s
			// in run 14, from that alone).
			os.RemoveAll(rdir)
			fmt.Printf("BENCH dump size_mib=%d docker_s=%.3f runc_s=%.3f ours_s=%.3f vs_docker=%.1fx vs_runc=%.2f mem_touch_s=%.3f/%.3f/%.3f\n",
				mib, dockerDump.Seconds(), runcDump.Seconds(), oursDump.Seconds(),
				dockerDump.Seconds()/oursDump.Seconds(), oursDump.Seconds()/runcDump.Seconds(),
				touched["docker"].Seconds(), touched["runc"].Seconds(), touched["ours"].Seconds())
			ratios["dump vs_docker"] = append(ratios["dump vs_docker"], dockerDump.Seconds()/oursDump.Seconds())
			ratios["dump vs_runc"] = append(ratios["dump vs_runc"], oursDump.Seconds()/runcDump.Seconds())

			// restore: docker start --checkpoint vs the worker (new container, wrapper restore).
			t0 = time.Now()
			if _, err := n.docker("start", "--checkpoint", "cp", names["docker"]); err != nil {
				return err
			}
			dockerRestore := time.Since(t0)
			// Docker's restored memhog would run (and hash) beside ours: removed first,
			// as is the exited source of our set.
			for _, kind := range []string{"docker", "ours"} {
				if _, err := n.docker("rm", "-f", names[kind]); err != nil {
					return err
				}
			}
			restoreTouched := settle(mib)
			t0 = time.Now()
			if _, err := a.Restore(ctx, set, worker.RestoreOptions{}); err != nil {
				return err
			}
			oursRestore := time.Since(t0)
			// floor: what Docker itself needs to create and start a fresh container of
			// the same image (API calls, as the worker makes them): no restore can be
			// faster through docker start.
			floor, err := startFloor(ctx, n, image)
			if err != nil {
				return err
			}
			fmt.Printf("BENCH restore size_mib=%d docker_s=%.3f ours_s=%.3f vs_docker=%.1fx floor_s=%.3f docker_vs_floor=%.1fx mem_touch_s=%.3f\n",
				mib, dockerRestore.Seconds(), oursRestore.Seconds(), dockerRestore.Seconds()/oursRestore.Seconds(),
				floor.Seconds(), dockerRestore.Seconds()/floor.Seconds(), restoreTouched.Seconds())
			ratios["restore vs_docker"] = append(ratios["restore vs_docker"], dockerRestore.Seconds()/oursRestore.Seconds())
			ratios["restore docker_vs_floor"] = append(ratios["restore docker_vs_floor"], dockerRestore.Seconds()/floor.Seconds())
			flush()
		}
		if len(ratios["dump vs_runc"]) > 0 {
			_, sum.dumpVsRunc[mib], _ = spread(ratios["dump vs_runc"])
			_, vd, _ := spread(ratios["restore vs_docker"])
			_, vf, _ := spread(ratios["restore docker_vs_floor"])
			sum.restoreVsFloor[mib] = vd / vf
		}
		if reps > 1 && len(ratios["dump vs_docker"]) > 0 {
			dlo, dmed, dhi := spread(ratios["dump vs_docker"])
			rlo, rmed, rhi := spread(ratios["dump vs_runc"])
			fmt.Printf("BENCH dump-summary size_mib=%d reps=%d vs_docker_min=%.1fx vs_docker_median=%.1fx vs_docker_max=%.1fx vs_runc_min=%.2f vs_runc_median=%.2f vs_runc_max=%.2f\n",
				mib, len(ratios["dump vs_docker"]), dlo, dmed, dhi, rlo, rmed, rhi)
			lo, med, hi := spread(ratios["restore vs_docker"])
			_, fmed, _ := spread(ratios["restore docker_vs_floor"])
			fmt.Printf("BENCH restore-summary size_mib=%d reps=%d vs_docker_min=%.1fx vs_docker_median=%.1fx vs_docker_max=%.1fx docker_vs_floor_median=%.1fx\n",
				mib, len(ratios["restore vs_docker"]), lo, med, hi, fmed)
		}
		// The migration cases, --reps times, interleaved (each repetition runs every
		// chosen mode once): this machine's memory state moves a 1 GiB case 2-5x within
		// minutes, so one run per mode says little.
		for r := 0; r < reps; r++ {
			sfx := stamp
			if reps > 1 {
				sfx = fmt.Sprintf("%s-r%d", stamp, r+1)
			}
			// migrate (cold): dump with exit on node 1, then send the set, then restore on
			// node 2 (three passes one after the other).
			if want["cold"] {
				coldTouched := settle(mib)
				mname := fmt.Sprintf("bench-seq-%d-%s", mib, sfx)
				cleanups = append(cleanups, func() { nodes[1].docker("rm", "-f", mname) }, func() { n.docker("rm", "-f", mname) })
				if err := memhog(n, mname, image, mib); err != nil {
					return err
				}
				c0, d0 := cpu(pids[0]), cpu(pids[1])
				t0 := time.Now()
				sm, err := a.Dump(ctx, mname, mname, false)
				if err != nil {
					return err
				}
				tDump := time.Since(t0)
				if _, err := a.Send(ctx, mname, bi.Addr); err != nil {
					return err
				}
				tSend := time.Since(t0) - tDump
				t1 := time.Now()
				if _, err := b.Restore(ctx, mname, worker.RestoreOptions{}); err != nil {
					return err
				}
				tRestore := time.Since(t1)
				downtime := time.Since(t0)
				coldDowntime = downtime
				downtimes["cold"] = append(downtimes["cold"], downtime)
				fmt.Printf("BENCH migrate size_mib=%d mode=cold downtime_s=%.3f dump_s=%.3f criu_cpu_s=%.2f send_s=%.3f restore_s=%.3f worker_rss_mib=%.1f src_cpu_s=%.2f dst_cpu_s=%.2f mem_touch_s=%.3f\n",
					mib, downtime.Seconds(), tDump.Seconds(), sm.DumpCPUSeconds, tSend.Seconds(), tRestore.Seconds(), max(hwm(pids[0]), hwm(pids[1])),
					cpu(pids[0])-c0, cpu(pids[1])-d0, coldTouched.Seconds())
				_ = a.DropSet(ctx, mname)
				flush()
			}
			// migrate (cold-streamed): DumpTo on node 1 streams the images to node 2 while CRIU
			// writes them (exit), then restore on node 2. downtime_s = dump start to the
			// restored container running; dump_s includes the end of the stream.
			if want["cold-streamed"] {
				if err := oneCallMigration("cold-streamed", fmt.Sprintf("bench-mig-%d-%s", mib, sfx), true, plain, func(name string) (*imageset.Manifest, error) {
					return a.DumpTo(ctx, name, name, bi.Addr, false)
				}); err != nil {
					return err
				}
			}
			if want["cold-streamed-tls"] {
				if err := oneCallMigration("cold-streamed-tls", fmt.Sprintf("bench-tls-%d-%s", mib, sfx), true, withTLS, func(name string) (*imageset.Manifest, error) {
					return withTLS.a.DumpTo(ctx, name, name, withTLS.bAddr, false)
				}); err != nil {
					return err
				}
			}
			// migrate (cold-direct): DumpInto on node 1: CRIU sends the pages straight to a
			// page server of node 2's worker (no copy written on node 1), the other images
			// follow, node 2 hashes the pages as they arrive; then restore on node 2.
			// cold-direct and cold-direct-arrival (its pages hashed on arrival): the pair
			// in alternating order (even repetitions arrival first), so that neither
			// always meets the memory the case before it left.
			direct := []func() error{}
			if want["cold-direct"] {
				direct = append(direct, func() error {
					return oneCallMigration("cold-direct", fmt.Sprintf("bench-dir-%d-%s", mib, sfx), false, plain, func(name string) (*imageset.Manifest, error) {
						return a.DumpInto(ctx, name, name, bi.Addr)
					})
				})
			}
			if want["cold-direct-arrival"] {
				direct = append(direct, func() error {
					return oneCallMigration("cold-direct-arrival", fmt.Sprintf("bench-darr-%d-%s", mib, sfx), false, arrival, func(name string) (*imageset.Manifest, error) {
						return arrival.a.DumpInto(ctx, name, name, arrival.bAddr)
					})
				})
			}
			if r%2 == 1 {
				slices.Reverse(direct)
			}
			for _, f := range direct {
				if err := f(); err != nil {
					return err
				}
			}
			if want["cold-direct-tls"] {
				if err := oneCallMigration("cold-direct-tls", fmt.Sprintf("bench-dtls-%d-%s", mib, sfx), false, withTLS, func(name string) (*imageset.Manifest, error) {
					return withTLS.a.DumpInto(ctx, name, name, withTLS.bAddr)
				}); err != nil {
					return err
				}
			}
			// migrate (post-copy): lazy dump on node 1 (no memory written), send the small
			// set, restore on node 2 at once; pages follow on demand. Downtime ends when the
			// restored container runs; total_s when the source exited (all pages moved).
			if !want["post-copy"] {
			} else if ai, pcTouched, err := settledInfo(ctx, a, mib); err != nil || !ai.PostCopy.OK {
				fmt.Printf("BENCH migrate size_mib=%d mode=post-copy refused=%q\n", mib, ai.PostCopy.Reason)
			} else {
				pname := fmt.Sprintf("bench-pc-%d-%s", mib, sfx)
				cleanups = append(cleanups, func() { nodes[1].docker("rm", "-f", pname) }, func() { n.docker("rm", "-f", pname) })
				if err := memhog(n, pname, image, mib); err != nil {
					return err
				}
				t0 := time.Now()
				if _, err := a.DumpLazy(ctx, pname, pname, "127.0.0.1:0"); err != nil {
					return err
				}
				tDump := time.Since(t0)
				if _, err := a.Send(ctx, pname, bi.Addr); err != nil {
					return err
				}
				tSend := time.Since(t0) - tDump
				t1 := time.Now()
				if _, err := b.Restore(ctx, pname, worker.RestoreOptions{}); err != nil {
					return err
				}
				tRestore := time.Since(t1)
				downtime := time.Since(t0)
				for i := 0; i < 1200; i++ {
					if st, _ := n.docker("inspect", "-f", "{{.State.Status}}", pname); st == "exited" {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				total := time.Since(t0)
				vsCold := "-" // the cold case did not run
				if coldDowntime > 0 {
					vsCold = fmt.Sprintf("%.1fx", coldDowntime.Seconds()/downtime.Seconds())
				}
				fmt.Printf("BENCH migrate size_mib=%d mode=post-copy downtime_s=%.3f total_s=%.3f dump_s=%.3f send_s=%.3f restore_s=%.3f vs_cold=%s worker_rss_mib=%.1f mem_touch_s=%.3f\n",
					mib, downtime.Seconds(), total.Seconds(), tDump.Seconds(), tSend.Seconds(), tRestore.Seconds(),
					vsCold, max(hwm(pids[0]), hwm(pids[1])), pcTouched.Seconds())
				downtimes["post-copy"] = append(downtimes["post-copy"], downtime)
				totals["post-copy"] = append(totals["post-copy"], total)
				flush()
			}
		}
		if reps > 1 {
			for _, mode := range []string{"cold", "cold-streamed", "cold-streamed-tls", "cold-direct", "cold-direct-arrival", "cold-direct-tls", "post-copy"} {
				if d := downtimes[mode]; len(d) > 0 {
					extra := ""
					if t := totals[mode]; len(t) > 0 {
						lo, med, hi := spread(t)
						extra = fmt.Sprintf(" total_min_s=%.3f total_median_s=%.3f total_max_s=%.3f", lo.Seconds(), med.Seconds(), hi.Seconds())
					}
					lo, med, hi := spread(d)
					fmt.Printf("BENCH migrate-summary size_mib=%d mode=%s reps=%d downtime_min_s=%.3f downtime_median_s=%.3f downtime_max_s=%.3f%s\n",
						mib, mode, len(d), lo.Seconds(), med.Seconds(), hi.Seconds(), extra)
				}
			}
		}
		if d := downtimes["post-copy"]; len(d) > 0 {
			_, sum.postCopy[mib], _ = spread(d)
		}
		if d := downtimes["cold-direct"]; len(d) > 0 {
			_, sum.coldDirect[mib], _ = spread(d)
		}
		if prod != nil {
			flush()
			med, err := prod.run(mib, reps, stamp)
			if err != nil {
				return err
			}
			sum.product[mib] = med
		}
		// Cleanup of the sets made here.
		for _, d := range []string{filepath.Join(n.dataRoot, "swarmckpt", "restored"), filepath.Join(nodes[1].dataRoot, "swarmckpt", "restored")} {
			os.RemoveAll(d)
		}
	}
	sum.print(sizeList)
	return nil
}

// spread returns the smallest, median and largest of xs (not empty; xs is not changed).
func spread[T ~int64 | ~float64](xs []T) (lo, med, hi T) {
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], m, s[len(s)-1]
}

// memhog starts IMAGE memhog MIB and waits until its memory is filled.
func memhog(n node, name, image string, mib int) error {
	n.docker("rm", "-f", name)
	if _, err := n.docker("run", "-d", "--name", name, image, "memhog", strconv.Itoa(mib)); err != nil {
		return err
	}
	for i := 0; i < 600; i++ {
		if out, _ := n.docker("logs", name); strings.Contains(out, "sum ") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not fill its memory in 60 s", name)
}

// settle writes back the page cache's dirty data (earlier cases wrote GiBs: Docker's
// checkpoint, the sets) before a case is timed, so that a case does not pay for the
// writeback of the previous one. It then returns touch(mib): the state of the
// machine's memory the case starts from.
func settle(mib int) time.Duration {
	syscall.Sync()
	return touch(mib)
}

// touch times the first write of mib MiB of fresh anonymous memory (one byte per
// page), then gives it back. On this VM that cost is not fixed: the host backs memory
// the guest freed again only when it is touched (free page reporting), so the same
// write of 1 GiB took 0.34 s and 3.4 s a minute apart (2026-12-04). Every case here
// writes its size in fresh memory at least twice (page cache of the images, the
// restored process), so each line prints mem_touch_s: a baseline of the same run to
// read its times against.
func touch(mib int) time.Duration {
	t := time.Now()
	b, err := syscall.Mmap(-1, 0, mib<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	d := time.Since(t)
	_ = syscall.Munmap(b)
	return d
}

// settledInfo is settle, then the worker's Info.
func settledInfo(ctx context.Context, w *worker.Client, mib int) (worker.NodeInfo, time.Duration, error) {
	touched := settle(mib)
	info, err := w.Info(ctx)
	return info, touched, err
}

// startFloor times docker create + docker start (Docker API) of a fresh container that
// runs IMAGE counter on node n, then removes it.
func startFloor(ctx context.Context, n node, image string) (time.Duration, error) {
	cli, err := client.NewClientWithOpts(client.WithHost(n.host), client.WithAPIVersionNegotiation())
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	t0 := time.Now()
	c, err := cli.ContainerCreate(ctx, &dcontainer.Config{Image: image, Cmd: []string{"counter"}}, &dcontainer.HostConfig{}, nil, nil, "")
	if err != nil {
		return 0, fmt.Errorf("floor: docker create: %w", err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, dcontainer.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, dcontainer.StartOptions{}); err != nil {
		return 0, fmt.Errorf("floor: docker start: %w", err)
	}
	return time.Since(t0), nil
}

// cpu is the CPU time (user+system) pid used so far, in seconds.
func cpu(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return float64(u+k) / 100 // USER_HZ
}

// hwm is the peak RSS of pid in MiB (VmHWM).
func hwm(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}

// pair is a worker on node 1 (a) and one on node 2 (b, at bAddr), with their pids.
type pair struct {
	a, b  *worker.Client
	bAddr string
	pids  []int
	stop  func()
}

// startPair starts a worker on each node named prefix-1, prefix-2, with extra flags.
func startPair(bin string, nodes []node, prefix, tokenFile, token string, extra ...string) (pair, error) {
	return startPairWith(nodes, func(i int, n node) (*worker.Client, int, func(), error) {
		return startWorker(bin, n, fmt.Sprintf("%s-%d", prefix, i+1), tokenFile, token, extra...)
	})
}

// startTLSPair starts a worker with TLS on each node (certificates by worker tls-init
// in dir), and clients that trust their CA.
func startTLSPair(bin string, nodes []node, dir, tokenFile, token string) (pair, error) {
	tlsDir := filepath.Join(dir, "tls")
	return startPairWith(nodes, func(i int, n node) (*worker.Client, int, func(), error) {
		name := fmt.Sprintf("bench-tls-%d", i+1)
		if out, err := exec.Command(bin, "worker", "tls-init", "--dir", tlsDir, "--node", name, "--ip", "127.0.0.1").CombinedOutput(); err != nil {
			return nil, 0, nil, fmt.Errorf("worker tls-init: %w: %s", err, out)
		}
		caCert, _ := pki.CAFiles(tlsDir)
		cert, key := pki.NodeFiles(tlsDir, name)
		pool, err := worker.LoadCA(caCert)
		if err != nil {
			return nil, 0, nil, err
		}
		c, pid, stop, err := startWorker(bin, n, name, tokenFile, token, "--tls-ca", caCert, "--tls-cert", cert, "--tls-key", key)
		if err != nil {
			return nil, 0, nil, err
		}
		c.TLS = worker.ClientTLS(pool)
		return c, pid, stop, nil
	})
}

// startPairWith starts the workers of a pair on nodes 1 and 2 with start, and reads
// node 2's transfer address; on an error it stops what it started.
func startPairWith(nodes []node, start func(i int, n node) (*worker.Client, int, func(), error)) (pair, error) {
	var p pair
	var stops []func()
	p.stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for i, n := range nodes[:2] {
		c, pid, stop, err := start(i, n)
		if err != nil {
			p.stop()
			return p, err
		}
		stops = append(stops, stop)
		p.pids = append(p.pids, pid)
		if i == 0 {
			p.a = c
		} else {
			p.b = c
		}
	}
	bi, err := p.b.Info(context.Background())
	if err != nil {
		p.stop()
		return p, err
	}
	p.bAddr = bi.Addr
	return p, nil
}

func startWorker(bin string, n node, name, tokenFile, token string, extra ...string) (*worker.Client, int, func(), error) {
	dir, err := os.MkdirTemp("", "dpbench-")
	if err != nil {
		return nil, 0, nil, err
	}
	addrFile := filepath.Join(dir, "addr")
	if !slices.Contains(extra, "--tls-ca") {
		extra = append(extra, "--insecure-no-tls") // workers on one host
	}
	cmd := exec.Command(bin, append([]string{"worker", "--node", name, "--docker-host", n.host, "--exec-root", n.execRoot,
		"--journal", filepath.Join(dir, "journal"), "--addr-file", addrFile, "--token-file", tokenFile}, extra...)...)
	logf, _ := os.Create(filepath.Join(dir, "worker.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, 0, nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if logDir != "" {
			_ = os.MkdirAll(logDir, 0o700)
			_ = os.Rename(filepath.Join(dir, "worker.log"), filepath.Join(logDir, name+".log"))
		}
		os.RemoveAll(dir)
	}
	for i := 0; i < 500; i++ {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			return &worker.Client{Addr: strings.TrimSpace(string(b)), Token: token}, cmd.Process.Pid, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return nil, 0, nil, fmt.Errorf("worker for %s did not start", n.host)
}

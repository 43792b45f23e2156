package coordinator_test

// Fault injection (issue 21, "Done when"): on a 3-node lab whose daemons are supervised
// (`lab up --daemons`: each restarted when it ends, as the systemd units restart them),
// each seeded run starts a snapshot, restore or migration (streamed, or --copy direct)
// of the bank stack and kills, with -9 and after a seeded delay, one of our processes:
// a worker, an agent, the coordinator or a CRIU. After each run it checks the
// invariant: every holder runs with its state (money conserved, no holder started
// fresh: its transfer counter did not go back) or the operation completed; nothing
// frozen or network-locked, nothing journaled held, a few seconds after the CLI
// returned; no leftovers (no .incoming-* set or direct transfer's .pages-* directory,
// no exited restored container); and a following snapshot commits (no stale lock). A
// direct migration's record also keeps its sets on their targets (the only copy after
// a success, not dropped by a failure or its rollback) and gets its page digests within
// a bounded time (directKept).
//
// Short by default (part of make test); the campaign: make faults RUNS=100 (or
// go test -run TestIntegrationFaults ./coordinator/ -args -runs 100 -seed N; chosen
// seeds: make faults SEEDS=1,4,5,8 or -args -seeds 1,4,5,8; as many as fit in a time:
// make faults FOR=30m or -args -for 30m). A failing run prints its seed; -seed N -runs 1
// replays it.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

var (
	faultRuns  = flag.Int("runs", 10, "fault injection: number of seeded runs (TestIntegrationFaults)")
	faultSeed  = flag.Int64("seed", -1, "fault injection: seed of the first run (-1: 1, or $SWARMCKPT_FAULT_SEED); run i uses seed+i")
	faultSeeds = flag.String("seeds", "", "fault injection: comma-separated seeds to run, in place of -seed and -runs")
	faultFor   = flag.Duration("for", 0, "fault injection: start no run after this long (0: no limit); a campaign then runs as many as fit")
)

// heldAfter is how long after the CLI returned (or the kill, if later) a container may
// still be frozen or network-locked.
const heldAfter = 10 * time.Second

var (
	faultOps     = []string{"snapshot", "restore", "migrate"}
	faultVictims = []string{"worker", "agent", "coordinator", "criu"}
)

// fault is what one seed picks: the operation, the process killed and when.
type fault struct {
	seed   int64
	op     string // snapshot, restore, migrate
	victim string // worker, agent, coordinator, criu
	node   int    // 1..3: the victim's node (worker, agent), and migrate's --to/--from node
	from   bool   // migrate --from node (else --to)
	whole  bool   // migrate --whole-stack (else partial, the default: only the containers that must move)
	direct bool   // migrate --copy direct (else streamed, the default)
	delay  time.Duration
}

// pickFault derives a run from its seed: op and victim cycle (seed mod 3, seed mod 4),
// so that 4 consecutive seeds kill every process, 3 run every operation and 12 cover
// every pair; a migration is partial or --whole-stack by the parity of k+k/4 (k =
// seed/3), so that 24 consecutive seeds kill every process during both kinds and 10
// run both; a migration copies direct (--copy direct) or streamed by the parity of
// k/2+k/8, so that 48 consecutive seeds kill every process during every kind of
// migration with either copy mode (the short run's seed 8 is direct), and the seeds
// that were streamed migrations before the copy mode was picked (until 2026-12-06)
// keep every other choice; node, direction and delay are random. The delay spans the operation's
// usual length on the lab (snapshot ~0.5-0.8 s, partial migrate ~1-2.5 s, restore and
// whole-stack migrate ~2.5-4 s).
func pickFault(seed int64) fault {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	u := uint64(seed)
	f := fault{seed: seed, op: faultOps[u%3], victim: faultVictims[u%4], node: 1 + r.IntN(3), from: r.IntN(2) == 0}
	if k := u / 3; f.op == "migrate" {
		f.whole = (k+k/4)%2 == 1
		f.direct = (k/2+k/8)%2 == 1
	}
	span := time.Second
	switch {
	case f.op == "migrate" && !f.whole:
		span = 2500 * time.Millisecond // a partial migration moves fewer: ~1-2.5 s
	case f.op != "snapshot":
		span = 3500 * time.Millisecond
	}
	f.delay = time.Duration(r.Int64N(int64(span)))
	return f
}

func (f fault) String() string {
	op := f.op
	if f.op == "migrate" {
		op = "partial migrate"
		if f.whole {
			op = "migrate --whole-stack"
		}
		if f.direct {
			op += " --copy direct"
		}
	}
	s := fmt.Sprintf("seed %d: %s, kill -9 %s", f.seed, op, f.victim)
	if f.victim == "worker" || f.victim == "agent" {
		s += fmt.Sprintf(" of node %d", f.node)
	}
	return s + fmt.Sprintf(" after %v", f.delay.Round(time.Millisecond))
}

func TestPickFaultCoversEveryPair(t *testing.T) {
	seen := map[string]bool{}
	for s := int64(0); s < 12; s++ {
		f := pickFault(s)
		seen[f.op+"/"+f.victim] = true
		if f != pickFault(s) {
			t.Fatalf("seed %d picks differently twice", s)
		}
		if f.node < 1 || f.node > 3 || f.delay < 0 || f.delay > 3500*time.Millisecond {
			t.Fatalf("seed %d: %+v out of range", s, f)
		}
	}
	if len(seen) != 12 {
		t.Fatalf("12 consecutive seeds cover %d op/victim pairs, want 12: %v", len(seen), seen)
	}
	// 24 consecutive seeds (from any start) kill every process during a partial and
	// during a whole-stack migration.
	for from := int64(0); from < 24; from++ {
		kinds := map[string]bool{}
		for s := from; s < from+24; s++ {
			if f := pickFault(s); f.op == "migrate" {
				kinds[fmt.Sprintf("%s/%v", f.victim, f.whole)] = true
			} else if f.whole || f.direct {
				t.Fatalf("seed %d: %s is not a migration but picks --whole-stack or --copy direct", s, f)
			}
		}
		if len(kinds) != 8 {
			t.Fatalf("seeds %d-%d cover %d victim/migration-kind pairs, want 8: %v", from, from+23, len(kinds), kinds)
		}
	}
	// 48 consecutive seeds (from any start) kill every process during a partial and a
	// whole-stack migration, each copied streamed and direct.
	for from := int64(0); from < 48; from++ {
		kinds := map[string]bool{}
		for s := from; s < from+48; s++ {
			if f := pickFault(s); f.op == "migrate" {
				kinds[fmt.Sprintf("%s/%v/%v", f.victim, f.whole, f.direct)] = true
			}
		}
		if len(kinds) != 16 {
			t.Fatalf("seeds %d-%d cover %d victim/migration-kind/copy triples, want 16: %v", from, from+47, len(kinds), kinds)
		}
	}
	// The short run of make test (10 runs from seed 1) kills every process, runs
	// every operation and both kinds of migration.
	ops, victims := map[string]bool{}, map[string]bool{}
	var short []string
	for s := int64(1); s <= 10; s++ {
		f := pickFault(s)
		ops[f.op], victims[f.victim] = true, true
		if f.op == "migrate" {
			ops[fmt.Sprintf("migrate/whole=%v", f.whole)] = true
			ops[fmt.Sprintf("migrate/direct=%v", f.direct)] = true
		}
		short = append(short, f.String())
	}
	if len(ops) != 7 || len(victims) != 4 {
		t.Fatalf("the short run covers ops %v and victims %v, want all 3 (both kinds of migration, both copy modes) and 4:\n%s", ops, victims, strings.Join(short, "\n"))
	}
}

// faultLab is the lab of TestIntegrationFaults: an e2e (for its CLI and bank helpers)
// over a lab whose daemons lab up runs.
type faultLab struct {
	*e2e
	p lab.Plan
}

// setupFaults brings up a lab named prefix+PID with supervised daemons (lab up
// --daemons and upArgs) and the bank deployed and meshed; it is removed at the end.
func setupFaults(t *testing.T, prefix string, upArgs ...string) *faultLab {
	if r := lab.IntegrationSkipReason(); r != "" {
		t.Skip(r)
	}
	images, err := lab.ImageDirForTests()
	if err != nil {
		t.Skip("SKIP INTEGRATION: " + err.Error())
	}
	if _, err := os.Stat(filepath.Join(images, "bank.tar")); err != nil {
		t.Skipf("SKIP INTEGRATION: no workload images in %s: run 'make images'", images)
	}
	e := &e2e{t: t, name: fmt.Sprintf("%s%d", prefix, os.Getpid()%10000), workers: map[string]*exec.Cmd{}, agents: map[string]*exec.Cmd{}}
	// The lab's daemons run this binary; the runtime wrapper must be next to it.
	e.bin = os.Getenv("SWARMCKPT_BIN")
	if e.bin == "" {
		e.bin = buildBinaries(t, t.TempDir())
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.bin), "swarmckpt-runtime")); err != nil {
		t.Fatalf("no swarmckpt-runtime next to %s (make build): restores cannot work: %v", e.bin, err)
	}
	if out, code := e.run(3*time.Minute, append([]string{"lab", "up", "--nodes", "3", "--name", e.name, "--images", images, "--daemons"}, upArgs...)...); code != 0 {
		t.Fatalf("lab up: %s", out)
	}
	p, err := lab.Load(lab.DefaultConfig().RunDir, e.name)
	if err != nil || p.Daemons == nil {
		t.Fatalf("lab %s: %v (daemons %v)", e.name, err, p.Daemons)
	}
	e.dir, e.nats = p.Daemons.Dir, p.Daemons.NATSURL()
	t.Cleanup(func() {
		if t.Failed() {
			logDockerd(t, e.name, 3)
			coords, _ := filepath.Glob(filepath.Join(e.dir, "coordinator*.log"))
			for _, f := range append(coords, filepath.Join(e.dir, "agent-"+e.node(1)+".log"), filepath.Join(e.dir, "worker-"+e.node(1)+".log")) {
				b, _ := os.ReadFile(f)
				t.Logf("--- %s (tail) ---\n%s", filepath.Base(f), tail(string(b), 3000))
			}
		}
		if keep := os.Getenv("SWARMCKPT_TEST_LOGS"); keep != "" {
			to := filepath.Join(keep, t.Name())
			logs, _ := filepath.Glob(filepath.Join(e.dir, "*.log"))
			if err := os.MkdirAll(to, 0o700); err == nil {
				for _, l := range logs {
					if b, err := os.ReadFile(l); err == nil {
						_ = os.WriteFile(filepath.Join(to, filepath.Base(l)), b, 0o600)
					}
				}
			}
			t.Logf("daemon logs kept in %s (SWARMCKPT_TEST_LOGS)", to)
		}
		if out, code := e.run(3*time.Minute, "lab", "down", "--name", e.name); code != 0 {
			t.Errorf("lab down: %s", out)
		}
	})
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
		filepath.Join(repoRoot(), "deploy", "examples", "bank.yml"), "bank"); code != 0 {
		t.Fatalf("lab deploy: %s", out)
	}
	waitLong(t, "bank healthy and meshed", e.bankMeshed)
	return &faultLab{e2e: e, p: p}
}

func TestIntegrationFaults(t *testing.T) {
	base := *faultSeed
	if base < 0 {
		base = 1
		if v := os.Getenv("SWARMCKPT_FAULT_SEED"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				base = n
			}
		}
	}
	seeds := make([]int64, 0, *faultRuns)
	for i := range *faultRuns {
		seeds = append(seeds, base+int64(i))
	}
	if *faultSeeds != "" {
		seeds = seeds[:0]
		for _, f := range strings.Split(*faultSeeds, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("-seeds %q: %v", *faultSeeds, err)
			}
			seeds = append(seeds, n)
		}
	}
	fl := setupFaults(t, "flt")
	t0 := time.Now()
	// A committed snapshot to restore, and the transfer counters when it was taken.
	last, lastSent := fl.checkSnapshot(t, "flt-start")
	var summary, failed []string
	for _, seed := range seeds {
		if *faultFor > 0 && time.Since(t0) > *faultFor {
			t.Logf("FAULTS: -for %v passed: the runs from seed %d on are not run", *faultFor, seed)
			break
		}
		f := pickFault(seed)
		line := fmt.Sprintf("  %s: FAILED", f)
		runStart := time.Now()
		ok := t.Run(fmt.Sprintf("seed%d", f.seed), func(t *testing.T) {
			fl.t = t
			line = fl.faultRun(t, f, last, lastSent)
			last, lastSent = fl.checkSnapshot(t, fmt.Sprintf("flt-%d-after", f.seed))
		})
		summary = append(summary, line)
		if !ok {
			t.Logf("FAULT RUN FAILED: %s; replay: make faults SEED=%d RUNS=1", f, f.seed)
			fl.diagnose(t, runStart)
			failed = append(failed, fmt.Sprint(f.seed))
			// Put the bank back as deployed (its state is lost) and go on with the
			// next seed: a campaign reports every failing seed, not the first only.
			fl.t = t
			fl.repair(t)
			for try := 1; ; try++ { // the restarted coordinator may wait for agents first
				id := fmt.Sprintf("flt-%d-repaired%d", f.seed, try)
				sent := fl.sentCounters(t)
				out, code := fl.ctl(2*time.Minute, "snapshot", "bank", "--id", id)
				if code == 0 {
					last, lastSent = id, sent
					break
				}
				if try == 5 {
					t.Fatalf("no snapshot commits after the repair: exit %d\n%s", code, out)
				}
				time.Sleep(5 * time.Second)
			}
		}
	}
	t.Logf("FAULTS: %d runs (seeds %v) in %s, %d failed (seeds %s):\n%s", len(summary), seeds, time.Since(t0).Round(time.Second),
		len(failed), strings.Join(failed, " "), strings.Join(summary, "\n"))
}

// repair puts the bank back as deployed after a failed run: every restored container
// removed, the service scaled back to 5 replicas (started fresh), meshed again.
func (fl *faultLab) repair(t *testing.T) {
	t.Helper()
	t.Logf("repairing the bank: thawing and unlocking what is held, removing restored containers, scaling bank_holder back to 5")
	ctx := context.Background()
	fr, nl := &freezer.Cgroup{}, &netlock.NFT{}
	for node, refs := range fl.allContainers(t) {
		for _, c := range refs {
			if fz, err := fr.Frozen(ctx, c); err == nil && fz {
				t.Logf("repair: thawing %s on %s: %v", c.Name, node, fr.Thaw(ctx, c))
			}
			if st, err := nl.State(ctx, c); err == nil && st.Locked() {
				t.Logf("repair: unlocking %s on %s: %v", c.Name, node, nl.Unlock(ctx, c, nil))
			}
		}
	}
	for i := 1; i <= 3; i++ {
		ids, _ := fl.dockerOn(fl.node(i), "ps", "-aq", "--filter", "label=io.swarmckpt.service")
		if f := strings.Fields(ids); len(f) > 0 {
			if out, err := fl.dockerOn(fl.node(i), append([]string{"rm", "-f"}, f...)...); err != nil {
				t.Logf("docker rm on %s: %v: %s", fl.node(i), err, out)
			}
		}
	}
	if out, err := fl.dockerOn(fl.node(1), "service", "scale", "--detach", "bank_holder=5"); err != nil {
		t.Fatalf("repair: scale bank_holder to 5: %v: %s", err, out)
	}
	// Holds journaled for what is still held or removed now: a worker killed with -9
	// has its watchdog release the first and drop the second at once (its supervisor
	// restarts it).
	// An operation still running in the coordinator (hung on the fault) holds the
	// stack's lock: a restarted coordinator breaks it.
	for _, n := range fl.p.Nodes {
		if pid := fl.p.DaemonPid("worker", n.Name); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if pid := fl.p.DaemonPid("coordinator", ""); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	fl.daemonsUp(t)
	waitLong(t, "the coordinator answering after the repair", func() bool { _, code := fl.ctl(5*time.Second, "ls"); return code == 0 })
	waitLong(t, "bank healthy and meshed after the repair", fl.bankMeshed)
}

// faultRun runs one seeded fault and checks the invariant; it returns a summary line.
func (fl *faultLab) faultRun(t *testing.T, f fault, last string, lastSent map[int]int64) string {
	t.Logf("%s", f)
	// The counters from before the last snapshot: what runs now has sent at least as
	// much, and a restore goes back to that snapshot.
	before := lastSent
	// A partial migration's staying holders must run on untouched: never frozen, the
	// same container (and process) after the run.
	var pm *partialMove
	if f.op == "migrate" && !f.whole {
		pm = fl.planPartial(t, &f)
		defer pm.stop()
	}
	if f.op == "migrate" && f.whole {
		fl.pickMoving(t, &f) // a whole-stack migration of nothing is refused too
	}
	args := []string{f.op, "bank"}
	switch f.op {
	case "restore":
		args = []string{"restore", last}
	case "migrate":
		if f.from {
			args = append(args, "--from", fl.node(f.node))
		} else {
			args = append(args, "--to", fl.node(f.node))
		}
		if f.whole {
			args = append(args, "--whole-stack")
		}
		if f.direct {
			args = append(args, "--copy", "direct")
		}
	case "snapshot":
		args = append(args, "--id", fmt.Sprintf("flt-%d", f.seed))
	}
	cmd := exec.Command(fl.bin, append(args, "--nats", fl.nats, "--data-dir", fl.dir)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		exited <- code
	}()
	killed, what := fl.kill(t, f, start, exited)
	// An operation should end within slowAfter; one that takes longer is reported as
	// slow (the run fails) but still gets its invariant checked, so that "slow" and
	// "hung" are told apart: only one still running hungAfter after its start is hung.
	const slowAfter, hungAfter = 100 * time.Second, 6 * time.Minute
	var code int
	select {
	case code = <-exited:
	case <-time.After(time.Until(start.Add(slowAfter))):
		t.Logf("%s: SLOW: the CLI still runs %s after its start; waiting up to %s for it, then checking the invariant:\n%s",
			f, slowAfter, hungAfter, tail(out.String(), 1500))
		select {
		case code = <-exited:
			slow := time.Since(start).Round(time.Second)
			t.Logf("%s: SLOW: the CLI's whole output (where its time went):\n%s", f, out.String())
			defer t.Errorf("%s: SLOW: the CLI took %s (more than %s) though it ended and the checks below ran", f, slow, slowAfter)
		case <-time.After(time.Until(start.Add(hungAfter))):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: the CLI still runs %s later (hung on the fault):\n%s", f, hungAfter, out.String())
		}
	}
	took := time.Since(start)
	t.Logf("%s: %s; %v exited %d after %s:\n%s", f, what, args, code, took.Round(time.Millisecond), tail(out.String(), 1500))
	from := time.Now()
	if killed.After(from) {
		from = killed
	}
	released := fl.waitNothingHeld(t, f, from)
	if pm != nil {
		// Watched until everything was released: a restarted coordinator's recovery
		// (rollback or finish) included; the policy's snapshots after it are excused.
		pm.stop()
	}
	fl.daemonsUp(t)
	fl.stateKept(t, f, before)
	moved := ""
	if pm != nil {
		moved = fl.partialKept(t, f, pm, code)
	}
	fl.noLeftovers(t, f, start, code, !killed.IsZero())
	fl.noStaleKeys(t, f)
	if f.victim == "agent" && !killed.IsZero() {
		fl.noStaleRecords(t, f, killed)
	}
	if f.op == "snapshot" {
		fl.noAbortedSets(t, f, fmt.Sprintf("flt-%d", f.seed))
	}
	if f.direct {
		moved += fl.directKept(t, f, start, start.Add(took), code)
	}
	kill := what // why nothing was killed
	if !killed.IsZero() {
		kill = fmt.Sprintf("killed at %s", killed.Sub(start).Round(time.Millisecond))
	}
	return fmt.Sprintf("  %s: %s; exit %d after %s; all released %s after the CLI returned%s", f, kill, code, took.Round(time.Millisecond), released.Round(time.Millisecond), moved)
}

// diagnose logs what a failed run leaves to look at before the repair changes it: the
// CRIU logs of dumps and restores that failed since from (their error lines), and per
// running container what CRIU depends on and a failure could have left behind in it:
// the nftables tables of its network namespace, its mounts, threads and open files.
func (fl *faultLab) diagnose(t *testing.T, from time.Time) {
	t.Helper()
	for _, n := range fl.p.Nodes {
		logs, _ := filepath.Glob(filepath.Join(n.DataRoot, "swarmckpt", "sets", "*.failed-*.log"))
		for _, l := range logs {
			fi, err := os.Stat(l)
			if err != nil || fi.ModTime().Before(from) {
				continue
			}
			b, _ := os.ReadFile(l)
			var errs []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "Error") || strings.Contains(line, "Warn") {
					errs = append(errs, line)
				}
			}
			t.Logf("DIAGNOSE %s: %s: %d lines, errors and warnings:\n%s\n--- tail ---\n%s", n.Name, filepath.Base(l),
				strings.Count(string(b), "\n"), tail(strings.Join(errs, "\n"), 3000), tail(string(b), 2000))
		}
	}
	for node, refs := range fl.allContainers(t) {
		for _, c := range refs {
			tables, _ := exec.Command("nsenter", "-t", strconv.Itoa(c.Pid), "-n", "nft", "list", "tables").CombinedOutput()
			mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", c.Pid))
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid))
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", c.Pid))
			cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid))
			procs, _, _ := strings.Cut(string(cg), "\n")
			t.Logf("DIAGNOSE %s %s (pid %d): nft tables [%s]; %d mounts; %d fds; %d threads; cgroup %s",
				node, c.Name, c.Pid, strings.Join(strings.Fields(string(tables)), " "), strings.Count(string(mounts), "\n"),
				len(fds), len(tasks), strings.TrimSpace(procs))
		}
	}
}

// kill waits f.delay after start (or until the CLI exits) and kills f's victim with -9;
// a CRIU victim is the first CRIU of this lab seen from then on. It returns when it
// killed (zero if it did not) and what.
func (fl *faultLab) kill(t *testing.T, f fault, start time.Time, exited chan int) (time.Time, string) {
	select {
	case c := <-exited:
		exited <- c
		return time.Time{}, "the operation ended before the delay"
	case <-time.After(time.Until(start.Add(f.delay))):
	}
	for {
		var pid int
		switch f.victim {
		case "criu":
			pid = fl.criuPid()
		case "coordinator":
			pid = fl.p.DaemonPid("coordinator", "")
		default:
			pid = fl.p.DaemonPid(f.victim, fl.node(f.node))
		}
		if pid != 0 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				return time.Now(), fmt.Sprintf("killed %s (pid %d) at %s", f.victim, pid, time.Since(start).Round(time.Millisecond))
			}
		}
		select {
		case c := <-exited:
			exited <- c
			return time.Time{}, "no " + f.victim + " to kill before the operation ended"
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// criuPid is a running CRIU of this lab (one whose ancestors name the lab's run
// directory: the runc or swarmckpt-runtime that started it), 0 if none.
func (fl *faultLab) criuPid() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl := cmdline(pid)
		if !strings.Contains(cl, "criu") || strings.Contains(cl, "swarmckpt") {
			continue
		}
		for p, n := ppid(pid), 0; p > 1 && n < 10; p, n = ppid(p), n+1 {
			if strings.Contains(cmdline(p), fl.p.RunDir+"/") {
				return pid
			}
		}
	}
	return 0
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// allContainers are the running containers of every node (node -> refs).
func (fl *faultLab) allContainers(t *testing.T) map[string][]container.Ref {
	out := map[string][]container.Ref{}
	for i := 1; i <= 3; i++ {
		node := fl.node(i)
		ids, err := fl.dockerOn(node, "ps", "-q", "--no-trunc")
		if err != nil {
			t.Fatalf("docker ps on %s: %v: %s", node, err, ids)
		}
		if len(strings.Fields(ids)) == 0 {
			continue
		}
		o, err := fl.dockerOn(node, append([]string{"inspect", "-f", "{{.Id}} {{.Name}} {{.State.Pid}}"}, strings.Fields(ids)...)...)
		if err != nil {
			continue // one ended meanwhile: the next poll sees the rest
		}
		for _, l := range strings.Split(o, "\n") {
			var r container.Ref
			if _, err := fmt.Sscan(l, &r.ID, &r.Name, &r.Pid); err == nil && r.Pid > 0 {
				r.Name = strings.TrimPrefix(r.Name, "/")
				out[node] = append(out[node], r)
			}
		}
	}
	return out
}

// waitNothingHeld polls until no container of the lab is frozen or network-locked and
// no worker journals a hold, failing if that takes more than heldAfter from from. It
// returns how long it took.
func (fl *faultLab) waitNothingHeld(t *testing.T, f fault, from time.Time) time.Duration {
	t.Helper()
	ctx := context.Background()
	fr, nl := &freezer.Cgroup{}, &netlock.NFT{}
	for {
		var held []string
		for node, refs := range fl.allContainers(t) {
			for _, c := range refs {
				if fz, err := fr.Frozen(ctx, c); err == nil && fz {
					held = append(held, fmt.Sprintf("%s on %s frozen", c.Name, node))
				}
				if st, err := nl.State(ctx, c); err == nil && st.Locked() {
					held = append(held, fmt.Sprintf("%s on %s network-locked", c.Name, node))
				}
			}
		}
		for _, n := range fl.p.Nodes {
			j := watchdog.Journal{Dir: filepath.Join(fl.p.RunDir, n.Name, "holds")}
			if hs, _ := j.List(); len(hs) > 0 {
				held = append(held, fmt.Sprintf("%d holds journaled by the worker of %s", len(hs), n.Name))
			}
		}
		if len(held) == 0 {
			return time.Since(from)
		}
		if time.Since(from) > heldAfter {
			t.Fatalf("%s: %s later still held: %s", f, time.Since(from).Round(time.Millisecond), strings.Join(held, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemonsUp waits until every daemon runs again (restarted by its supervisor) and every
// agent has subscribed since its last start.
func (fl *faultLab) daemonsUp(t *testing.T) {
	t.Helper()
	waitLong(t, "every daemon of the lab running", func() bool {
		if fl.p.DaemonPid("coordinator", "") == 0 {
			return false
		}
		for _, n := range fl.p.Nodes {
			if fl.p.DaemonPid("worker", n.Name) == 0 || fl.p.DaemonPid("agent", n.Name) == 0 {
				return false
			}
			b, _ := os.ReadFile(filepath.Join(fl.dir, "agent-"+n.Name+".log"))
			s := string(b)
			// The last start of the agent logged "node agent ready" after it.
			if i := strings.LastIndex(s, `msg=started`); i >= 0 && !strings.Contains(s[i:], "node agent ready") {
				return false
			}
		}
		return true
	})
}

// bankReport is `bank query --json`'s output (the parts checked here).
type bankReport struct {
	Holders []struct {
		ID            int    `json:"id"`
		Balance       int64  `json:"balance"`
		TransfersSent int64  `json:"transfers_sent"`
		Instance      string `json:"instance"`
	} `json:"holders"`
	Problems []string `json:"problems"`
}

// sentCounters audits the bank (failing the test if money was lost or created, or a
// holder does not answer within 2 min) and returns each holder's transfer counter.
func (fl *faultLab) sentCounters(t *testing.T) map[int]int64 {
	t.Helper()
	start := time.Now()
	for {
		cmd := exec.Command("docker", "run", "--rm", "--network", "bank_net", "swarmckpt/bank:dev", "query", "--settle", "1m",
			"--service", "holder", "--count", "5", "--json")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+fl.docker(fl.node(1)))
		out, err := cmd.Output()
		var rep bankReport
		jerr := json.Unmarshal(out, &rep)
		if err == nil && jerr == nil && len(rep.Holders) == 5 {
			m := map[int]int64{}
			for _, h := range rep.Holders {
				m[h.ID] = h.TransfersSent
			}
			return m
		}
		if jerr == nil && len(rep.Problems) > 0 && len(rep.Holders) == 5 {
			t.Fatalf("bank lost or created money: %v", rep.Problems)
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("bank audit failing for 2 min (a holder missing or money lost): %v %v\n%s", err, jerr, tail(string(out), 2000))
		}
		time.Sleep(2 * time.Second)
	}
}

// stateKept: every holder runs with its state: money is conserved and no holder's
// transfer counter went back below what it was before the operation (a holder started
// fresh from its image counts from 0).
func (fl *faultLab) stateKept(t *testing.T, f fault, before map[int]int64) {
	t.Helper()
	after := fl.sentCounters(t)
	for id, n := range before {
		if after[id] < n {
			t.Errorf("%s: holder %d sent %d transfers before and %d after: it lost its state (started fresh?)", f, id, n, after[id])
		}
	}
}

// noLeftovers: no partial incoming image set (.incoming-*, or a direct transfer's
// .pages-*) on any node; no failed dump's or restore's CRIU log from a run that
// neither killed anything nor failed (a dump or restore that failed unreported); no
// restored container left exited or created (noStaleKeys checks etcd).
func (fl *faultLab) noLeftovers(t *testing.T, f fault, start time.Time, code int, killed bool) {
	t.Helper()
	for _, n := range fl.p.Nodes {
		sets := filepath.Join(n.DataRoot, "swarmckpt", "sets")
		inc, _ := filepath.Glob(filepath.Join(sets, ".incoming-*"))
		pages, _ := filepath.Glob(filepath.Join(sets, ".pages-*")) // a direct transfer's
		if inc = append(inc, pages...); len(inc) > 0 {
			t.Errorf("%s: partial incoming image sets left on %s: %v", f, n.Name, inc)
		}
		if code == 0 && !killed {
			logs, _ := filepath.Glob(filepath.Join(sets, "*.failed-*.log"))
			for _, l := range logs {
				if fi, err := os.Stat(l); err == nil && fi.ModTime().After(start) {
					t.Errorf("%s: a dump or restore failed on %s though nothing was killed and the operation succeeded: %s", f, n.Name, l)
				}
			}
		}
		out, err := fl.dockerOn(n.Name, "ps", "-a", "--filter", "label=io.swarmckpt.service", "--filter", "status=exited",
			"--filter", "status=created", "--format", "{{.Names}} {{.Status}}")
		if err != nil {
			t.Fatalf("docker ps on %s: %v: %s", n.Name, err, out)
		}
		if out != "" {
			t.Errorf("%s: restored containers left behind on %s (not running):\n%s", f, n.Name, out)
		}
	}
}

// noStaleKeys: in etcd, no journaled restore or migration and no lock of the bank
// stack (waiting up to 30 s for a restarted coordinator's recovery), and every
// worker record (<prefix>/workers/<node>) bound to a live lease.
func (fl *faultLab) noStaleKeys(t *testing.T, f fault) {
	t.Helper()
	cli := fl.etcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var stale []string
		ops, err := journaled(cli)
		if err != nil {
			t.Fatalf("%s: read the journal in etcd: %v", f, err)
		}
		for _, op := range ops {
			stale = append(stale, fmt.Sprintf("journaled %s %s of %s at step %s", op.Kind, op.ID, op.Stack, op.Step))
		}
		r, err := cli.Get(ctx, etcdstore.DefaultPrefix+"/stacks/bank/lock")
		if err != nil {
			t.Fatalf("%s: read the stack lock in etcd: %v", f, err)
		}
		for _, kv := range r.Kvs {
			stale = append(stale, fmt.Sprintf("lock %s held by %q", kv.Key, kv.Value))
		}
		if len(stale) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stale keys in etcd 30 s after the run: %s", f, strings.Join(stale, "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := cli.Get(ctx, etcdstore.DefaultPrefix+"/workers/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("%s: read the worker records in etcd: %v", f, err)
	}
	if len(r.Kvs) != len(fl.p.Nodes) {
		t.Errorf("%s: %d worker records in etcd, want one per node (%d)", f, len(r.Kvs), len(fl.p.Nodes))
	}
	for _, kv := range r.Kvs {
		if kv.Lease == 0 {
			t.Errorf("%s: worker record %s is bound to no lease: it outlives its worker", f, kv.Key)
			continue
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil || ttl.TTL <= 0 {
			t.Errorf("%s: worker record %s is bound to lease %x, which is not live (ttl %v, %v)", f, kv.Key, kv.Lease, ttl, err)
		}
	}
}

// checkSnapshot takes a snapshot of the bank after a run: it must commit (no stale lock
// or hold of the run in the way). It returns its ID and the transfer counters from
// just before it.
func (fl *faultLab) checkSnapshot(t *testing.T, id string) (string, map[int]int64) {
	t.Helper()
	sent := fl.sentCounters(t)
	out, code := fl.ctl(2*time.Minute, "snapshot", "bank", "--id", id)
	if code != 0 {
		t.Fatalf("snapshot %s after the run: exit %d (a stale lock or hold?)\n%s", id, code, out)
	}
	return id, sent
}

// holderAt is where a bank holder runs: its node, container and process.
type holderAt struct {
	node, id, name string
	pid            int
}

// holders are the running bank holders by id (their slot: bank_holder.N.TASK for a
// swarm task, bank_holder-N-... for a restored one); it fails on a holder running twice.
func (fl *faultLab) holders(t *testing.T) map[int]holderAt {
	t.Helper()
	out := map[int]holderAt{}
	for node, refs := range fl.allContainers(t) {
		for _, c := range refs {
			rest, ok := strings.CutPrefix(c.Name, "bank_holder")
			if !ok || rest == "" {
				continue
			}
			slot := strings.FieldsFunc(rest[1:], func(r rune) bool { return r == '.' || r == '-' })
			if len(slot) == 0 {
				continue
			}
			n, err := strconv.Atoi(slot[0])
			if err != nil {
				continue
			}
			if o, dup := out[n]; dup {
				t.Fatalf("holder %d runs twice: %s on %s and %s on %s", n, o.name, o.node, c.Name, node)
			}
			out[n] = holderAt{node: node, id: c.ID, name: c.Name, pid: c.Pid}
		}
	}
	return out
}

// partialMove is a partial migration's plan as the test sees it: the holders that
// must move (those on --from NODE, or not on --to NODE) and those that stay, with a
// watch that notes any staying holder seen frozen from before the migration until
// everything is released after it.
type partialMove struct {
	moving, staying map[int]holderAt
	done            chan struct{}
	stopped         chan struct{}
	frozen          []frozenAt // staying holders seen frozen (by the watch)
}

// frozenAt is a staying holder seen frozen, and when.
type frozenAt struct {
	id int
	h  holderAt
	at time.Time
}

// pickMoving returns which holders f's migration moves and which stay. When f's node
// and direction would move nothing (every holder already there, or none there:
// migrate refuses at once, exit 2, --whole-stack too), it picks the next node, then
// the other direction, that moves some (f is changed).
func (fl *faultLab) pickMoving(t *testing.T, f *fault) (moving, staying map[int]holderAt) {
	t.Helper()
	hs := fl.holders(t)
	orig := *f
	for try := range 6 {
		g := orig
		g.node, g.from = 1+(orig.node-1+try%3)%3, orig.from != (try >= 3)
		node := fl.node(g.node)
		moving, staying = map[int]holderAt{}, map[int]holderAt{}
		for id, h := range hs {
			if g.from && h.node == node || !g.from && h.node != node {
				moving[id] = h
			} else {
				staying[id] = h
			}
		}
		if len(moving) > 0 {
			if g != orig {
				t.Logf("%s: nothing to move from/to node %d: migrating from=%v node %d instead", orig, orig.node, g.from, g.node)
			}
			f.node, f.from = g.node, g.from
			break
		}
	}
	return moving, staying
}

// planPartial notes where the holders run before f's partial migration (pickMoving:
// f may change) and starts the watch of the staying ones' freezer state (every 20 ms
// until stop).
func (fl *faultLab) planPartial(t *testing.T, f *fault) *partialMove {
	t.Helper()
	pm := &partialMove{done: make(chan struct{}), stopped: make(chan struct{})}
	pm.moving, pm.staying = fl.pickMoving(t, f)
	go func() {
		defer close(pm.stopped)
		fr := &freezer.Cgroup{}
		for {
			for id, h := range pm.staying {
				if fz, err := fr.Frozen(context.Background(), container.Ref{ID: h.id, Name: h.name, Pid: h.pid}); err == nil && fz {
					pm.frozen = append(pm.frozen, frozenAt{id: id, h: h, at: time.Now()})
				}
			}
			select {
			case <-pm.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return pm
}

// stop ends the watch (idempotent) and waits for it.
func (pm *partialMove) stop() {
	select {
	case <-pm.done:
	default:
		close(pm.done)
	}
	<-pm.stopped
}

// partialKept checks a partial migration's end (code: the CLI's exit): the staying
// holders ran on untouched (never seen frozen; the same container and process on the
// same node); each moving holder runs once, on a target the migration allows if it
// succeeded (else moved by a recovery, or back on its node). Their state is what
// stateKept checks. It returns a note for the summary line.
func (fl *faultLab) partialKept(t *testing.T, f fault, pm *partialMove, code int) string {
	t.Helper()
	// The bank's policy (bank.yml: a scheduled snapshot every 15 s) freezes every
	// holder for a moment; such a snapshot cannot run while the migration holds the
	// stack's lock, only just before or after it: a freeze seen then is its.
	sched := fl.scheduledSnapshots(t)
	var frozen []string
	seen := map[int]bool{}
	for _, fz := range pm.frozen {
		if seen[fz.id] || slices.ContainsFunc(sched, func(w [2]time.Time) bool { return !fz.at.Before(w[0]) && !fz.at.After(w[1]) }) {
			continue
		}
		seen[fz.id] = true
		frozen = append(frozen, fmt.Sprintf("holder %d (%s on %s) at %s", fz.id, fz.h.name, fz.h.node, fz.at.Format("15:04:05.000")))
	}
	if len(frozen) > 0 {
		t.Errorf("%s: staying holders were frozen during the partial migration (no scheduled snapshot ran then): %s", f, strings.Join(frozen, ", "))
	}
	now := fl.holders(t)
	for id, h := range pm.staying {
		if n, ok := now[id]; !ok || n.node != h.node || n.id != h.id || n.pid != h.pid {
			t.Errorf("%s: staying holder %d was touched: %s on %s (pid %d) before, %+v after", f, id, h.name, h.node, h.pid, n)
		}
	}
	node := fl.node(f.node)
	moved, back := 0, 0
	for id, h := range pm.moving {
		n, ok := now[id]
		switch {
		case !ok:
			t.Errorf("%s: moving holder %d (%s on %s) runs nowhere after the run", f, id, h.name, h.node)
		case n.node == h.node:
			back++
			if code == 0 {
				t.Errorf("%s: the migration succeeded but holder %d still runs on %s (%s)", f, id, n.node, n.name)
			}
		case f.from && n.node == node || !f.from && n.node != node:
			t.Errorf("%s: holder %d moved from %s to %s, which the migration does not allow", f, id, h.node, n.node)
		default:
			moved++
		}
	}
	return fmt.Sprintf("; partial: %d moved, %d on their node, %d stayed untouched", moved, back, len(pm.staying))
}

// noStaleRecords: the agent of f's node, restarted after its kill at killed, released
// and removed every container record its predecessor left (worker/agent, records.go),
// those of containers gone since too, within heldAfter: none written before the kill
// remains (issue 21: records were never pruned, each restart retrying their releases).
func (fl *faultLab) noStaleRecords(t *testing.T, f fault, killed time.Time) {
	t.Helper()
	dir := filepath.Join(fl.dir, "agent-"+fl.node(f.node))
	for {
		recs, _ := filepath.Glob(filepath.Join(dir, "*", "*.rec"))
		var stale []string
		for _, r := range recs {
			if fi, err := os.Stat(r); err == nil && fi.ModTime().Before(killed) {
				stale = append(stale, filepath.Base(filepath.Dir(r))+"/"+filepath.Base(r))
			}
		}
		if len(stale) == 0 {
			return
		}
		if time.Since(killed) > heldAfter {
			t.Errorf("%s: %s later, the restarted agent of %s still keeps %d of its predecessor's %d container records: %s", f,
				time.Since(killed).Round(time.Millisecond), fl.node(f.node), len(stale), len(recs), strings.Join(stale[:min(len(stale), 5)], ", "))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// noAbortedSets: snapshot id, once final, committed, or (aborted, or never recorded)
// none of its image sets is left on any node within 30 s (their directories; a failed
// dump's CRIU log, <set>.failed-dump.log, stays for diagnosis).
func (fl *faultLab) noAbortedSets(t *testing.T, f fault, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, code := fl.ctl(20*time.Second, "inspect", id, "--output", "json")
		var m store.Manifest
		if code == 0 && json.Unmarshal([]byte(o), &m) == nil && m.State == store.StateCommitted {
			return
		}
		if code != 0 || m.State.Final() {
			break // aborted, or not recorded at all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: snapshot %s still %s 30 s after the run", f, id, m.State)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for {
		var left []string
		for _, n := range fl.p.Nodes {
			sets, _ := filepath.Glob(filepath.Join(n.DataRoot, "swarmckpt", "sets", id+".*"))
			for _, d := range sets {
				if fi, err := os.Stat(d); err == nil && fi.IsDir() {
					left = append(left, n.Name+":"+filepath.Base(d))
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: image sets of the aborted snapshot %s left: %s", f, id, strings.Join(left, ", "))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// scheduledSnapshots are the times the policy's scheduled snapshots ran (from the
// coordinators' logs: "scheduled snapshot starts" to its "snapshot ended", widened by
// 200 ms before and 1 s after for the freezes and releases around them; 30 s if its end
// is not logged: its coordinator was killed).
func (fl *faultLab) scheduledSnapshots(t *testing.T) [][2]time.Time {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(fl.dir, "coordinator*.log"))
	start := map[string]time.Time{}
	var out [][2]time.Time
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			if !ok {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				continue
			}
			_, id, ok := strings.Cut(rest, " snapshot=")
			if !ok {
				continue
			}
			id, _, _ = strings.Cut(id, " ")
			switch {
			case strings.Contains(rest, `msg="scheduled snapshot starts"`):
				start[id] = at
			case strings.Contains(rest, `msg="snapshot ended"`):
				if s, ok := start[id]; ok {
					out = append(out, [2]time.Time{s.Add(-200 * time.Millisecond), at.Add(time.Second)})
					delete(start, id)
				}
			}
		}
	}
	for _, s := range start {
		out = append(out, [2]time.Time{s.Add(-200 * time.Millisecond), s.Add(30 * time.Second)})
	}
	return out
}

// directDigestsWithin bounds how long after its checks begin a direct migration's
// record may still wait for its page digests: the target hashes the pages after the
// restore (or 30 s after the transfer if none came), and the coordinator's pages loop
// fills them at once after the migration, at a new leader's start and every 30 s.
const directDigestsWithin = 90 * time.Second

// directKept checks what a direct migration (f.direct; the CLI started at start,
// returned at returned with exit code) recorded and left: its snapshot (bank's, asked
// for by no policy or test, created since start) once final is committed or left no
// set (noAbortedSets); committed, every container that moves is recorded direct with
// its set on a node other than the one it ran on (one that does not, in a whole-stack
// migration, has its set where it ran), that set is there (the snapshot's only copy:
// neither a failed migration nor its rollback drops it), the node it ran on holds no
// copy if the migration succeeded (none is kept there), and its page digests are
// filled into the record within directDigestsWithin (pages_pending cleared, none
// unverified, every file with its sha256; polled). It returns a note for the summary.
func (fl *faultLab) directKept(t *testing.T, f fault, start, returned time.Time, code int) string {
	t.Helper()
	out, c := fl.ctl(20*time.Second, "ls", "bank", "--output", "json")
	var hs []store.Manifest
	if c != 0 || json.Unmarshal([]byte(out), &hs) != nil {
		t.Fatalf("%s: ls bank --output json: exit %d\n%s", f, c, out)
	}
	var ids []string
	for _, h := range hs {
		if h.Purpose == "" && !strings.HasPrefix(h.ID, "flt-") && !h.CreatedAt.Before(start.Add(-time.Second)) {
			ids = append(ids, h.ID)
		}
	}
	if len(ids) == 0 {
		if code == 0 {
			t.Errorf("%s: the direct migration succeeded but no snapshot of it is recorded", f)
		}
		return "; direct: no snapshot recorded"
	}
	var notes []string
	for _, id := range ids {
		fl.noAbortedSets(t, f, id)
		m := fl.manifest(id)
		if m.State != store.StateCommitted {
			notes = append(notes, fmt.Sprintf("%s %s", id, m.State))
			continue
		}
		direct := 0
		for _, ct := range m.Containers {
			name := fmt.Sprintf("%s.%d", ct.Service, ct.Slot)
			switch {
			case ct.Images == nil:
				t.Errorf("%s: %s of the committed snapshot %s has no image set recorded", f, name, id)
				continue
			case !ct.Direct && ct.Images.Node == ct.Node:
				continue // it does not move (--whole-stack restores it where it ran): dumped there
			case !ct.Direct:
				t.Errorf("%s: %s of the direct migration's snapshot %s ran on %s but its set is on %s, not recorded as dumped direct", f, name, id, ct.Node, ct.Images.Node)
				continue
			case ct.Images.Node == ct.Node:
				t.Errorf("%s: %s of snapshot %s ran on %s and its direct set is recorded there, not on its target", f, name, id, ct.Node)
			}
			direct++
			// Images.Dir is the dumping node's path (a direct set's record keeps it):
			// the set is the one of that name on Images.Node.
			set := filepath.Base(ct.Images.Dir)
			if _, err := os.Stat(fl.setDir(ct.Images.Node, set)); err != nil {
				t.Errorf("%s: the set of %s, snapshot %s's only copy, is gone from its target %s: %v", f, name, id, ct.Images.Node, err)
			}
			if code != 0 || slices.ContainsFunc(ct.Copies, func(cp store.Copy) bool { return cp.Node == ct.Node }) {
				continue // a rollback sent the set back there (the target kept its copy)
			}
			if src := fl.setDir(ct.Node, set); src != "" {
				if _, err := os.Stat(src); err == nil {
					t.Errorf("%s: the direct migration succeeded but %s's set %s is also on %s, where it ran", f, name, src, ct.Node)
				}
			}
		}
		if direct == 0 { // --whole-stack --from a node none ran on, or --to the node all ran on
			notes = append(notes, fmt.Sprintf("%s committed, no container moved to another node", id))
			continue
		}
		deadline := time.Now().Add(directDigestsWithin)
		for {
			m = fl.manifest(id)
			var pending, unverified []string
			for _, ct := range m.Containers {
				name := fmt.Sprintf("%s.%d", ct.Service, ct.Slot)
				switch {
				case ct.Images == nil:
				case ct.Images.PagesUnverified != "":
					unverified = append(unverified, name+": "+ct.Images.PagesUnverified)
				case ct.Images.PagesPending:
					pending = append(pending, name+" on "+ct.Images.Node)
				default:
					for _, fi := range ct.Images.Files {
						if len(fi.SHA256) != 64 {
							pending = append(pending, name+" "+fi.Name+" without its sha256")
						}
					}
				}
			}
			if len(unverified) > 0 {
				t.Errorf("%s: the direct migration's snapshot %s records sets whose pages will never be verified: %s", f, id, strings.Join(unverified, "; "))
				break
			}
			if len(pending) == 0 {
				notes = append(notes, fmt.Sprintf("%s committed, %d sets dumped into their targets, digests recorded %s after the CLI returned",
					id, direct, time.Since(returned).Round(100*time.Millisecond)))
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: the page digests of the direct migration's snapshot %s are still pending %s after the CLI returned: %s",
					f, id, time.Since(returned).Round(time.Second), strings.Join(pending, "; "))
				break
			}
			time.Sleep(time.Second)
		}
	}
	return "; direct: " + strings.Join(notes, ", ")
}

// setDir is the directory of image set set on node ("" for a node not of the lab).
func (fl *faultLab) setDir(node, set string) string {
	for _, n := range fl.p.Nodes {
		if n.Name == node {
			return filepath.Join(n.DataRoot, "swarmckpt", "sets", set)
		}
	}
	return ""
}

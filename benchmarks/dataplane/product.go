package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The product case (--cases product, needs --lab): `swarmckpt migrate` of a one-container
// stack (the memhog workload holding N MiB, --dirty-fraction 0) from the lab's first
// node to its second, through the lab's own coordinator, agents and workers, for each
// copy mode; against, in the same run,
//   - the Docker path: `docker checkpoint create` (exit) on node 1, the checkpoint
//     copied into a container created on node 2, `docker start --checkpoint` there;
//   - raw CRIU: `criu dump` of a plain process holding N MiB into tmpfs (/dev/shm) and
//     `criu restore` from there (no runc, no Docker, no transfer: the floor).
//
// Prints, per size and repetition,
//
//	BENCH migrate-product size_mib=N copy=MODE downtime_s=.. vs_docker_path=..x vs_raw=.. docker_path_s=.. raw_s=.. until_restored_s=.. wall_s=.. steps_ms=STEP:MS,...
//
// until_restored_s is the time from the start of the `swarmckpt migrate` command (text
// output) until it printed its `restored` event (the moved containers run on their
// targets); downtime_s is that less the steps before anything is frozen (steps_ms
// plan and prepare: resolving the stack, planning, and waiting for the targets'
// network keepers), an upper bound of the container's downtime (it still counts the
// snapshot's start before the freeze), compared with the whole Docker path and the
// whole raw dump+restore. (Before run 24 downtime_s was until_restored_s, which then
// had no prepare step: its plan step was 5-40 ms.) wall_s is the command's wall time:
// for post-copy it also waits until the last page arrived from the source (downtime_s
// was wall_s before run 23; for streamed and direct the two differ by the reply
// alone). MODE is a copy mode,
// or direct-standalone: a direct migration of a standalone container, as post-copy's
// (productCopies); streamed and direct move the stack's swarm task, which also scales
// its service down.
// Then the targets, one line each (medians over the repetitions):
//
//	BENCH summary target=NAME size_mib=N [copy=MODE|source=product|data-plane] value=.. want=.. met=yes|no|not-measured [why=".."]

// productCopies are the copy modes the product case migrates with, each from a
// freshly deployed stack. post-copy moves standalone containers only: its stack is
// first moved to node 2 by an untimed direct migration, then timed back to node 1
// with direct ("direct-standalone": the same starting point as post-copy's), then
// timed to node 2 with post-copy.
var productCopies = []string{"streamed", "direct", "post-copy"}

// productModes are the migrations the product case times (its lines, in order).
var productModes = []string{"streamed", "direct", "direct-standalone", "post-copy"}

// timedMigration is one timed migration of the product case: its mode (a copy mode,
// or direct-standalone: a direct migration of a standalone container).
type timedMigration struct {
	mode string
	migration
}

// product runs the product case for every size; it returns the medians per copy mode
// by size for the summary.
type product struct {
	bin, lab, workloads, dptest string
	env                         []string
	nodes                       []node
}

// freeSubnet is a subnet 10.242.N.0/24 no network of the lab has: each deployed stack
// gets its own, as the network of a removed stack can outlive it (a network keeper's
// failed first start on a node leaving its overlay leaks a swarm attachment task, which
// keeps the network; worker/restore's startKeeper).
func (p *product) freeSubnet() (string, error) {
	ids, err := p.nodes[0].docker("network", "ls", "-q")
	if err != nil {
		return "", err
	}
	used, err := p.nodes[0].docker(append([]string{"network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, strings.Fields(ids)...)...)
	if err != nil {
		return "", err
	}
	for n := 0; n < 256; n++ {
		if s := fmt.Sprintf("10.242.%d.0/24", n); !strings.Contains(" "+strings.Join(strings.Fields(used), " ")+" ", " "+s+" ") {
			return s, nil
		}
	}
	return "", fmt.Errorf("no free subnet 10.242.N.0/24 left on the lab (networks of removed stacks kept by leaked attachments: 'swarmckpt lab down' and up again)")
}

func newProduct(bin, lab, workloads, dptest string, nodes []node) (*product, error) {
	out, err := exec.Command(bin, "lab", "env", "--name", lab).Output()
	if err != nil {
		return nil, fmt.Errorf("swarmckpt lab env --name %s: %w (the product case needs the lab's coordinator: --lab)", lab, err)
	}
	env := os.Environ()
	for _, l := range strings.Split(string(out), "\n") {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(l), "export "); ok {
			env = append(env, kv)
		}
	}
	return &product{bin: bin, lab: lab, workloads: workloads, dptest: dptest, env: env, nodes: nodes}, nil
}

func (p *product) nodeName(i int) string { return fmt.Sprintf("%s-%d", p.lab, i+1) }

func (p *product) ctl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swarmckpt %s: %w: %s", strings.Join(args, " "), err, tailOf(string(out), 1500))
	}
	return string(out), nil
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// migration is what one `swarmckpt migrate` (text output) said, and when.
type migration struct {
	// running: from the command's start until it printed the `restored` event (the
	// moved containers run on their targets); zero when it printed none. wall: until
	// it exited (post-copy: after the last page arrived, too).
	running, wall time.Duration
	// snapshot: the migration's snapshot ID; copy: the copy mode it reports; steps:
	// its step times as "plan:MS,snapshot:MS,dump:MS,..." (empty without them).
	snapshot, copy, steps string
	// unfrozen: the steps before anything is frozen (plan, prepare), from steps.
	unfrozen time.Duration
}

// downtime is running less the steps before anything was frozen.
func (m migration) downtime() time.Duration {
	if m.unfrozen > 0 && m.unfrozen < m.running {
		return m.running - m.unfrozen
	}
	return m.running
}

var (
	snapshotLine = regexp.MustCompile(`^snapshot (\S+) of stack `)
	copyLine     = regexp.MustCompile(`\(copy: ([a-z-]+)\)`)
	stepTime     = regexp.MustCompile(`([a-z][a-z-]*) (\d+)ms`)
)

// parseLine takes in one line of migrate's text output, seen at since.
func (m *migration) parseLine(line string, since time.Duration) {
	switch {
	case m.running == 0 && strings.HasPrefix(line, "[") && strings.Contains(line, "] restored "):
		m.running = since
	case snapshotLine.MatchString(line):
		m.snapshot = snapshotLine.FindStringSubmatch(line)[1]
	case strings.HasPrefix(line, "steps: "):
		var st []string
		for _, p := range stepTime.FindAllStringSubmatch(line, -1) {
			st = append(st, p[1]+":"+p[2])
			if p[1] == "plan" || p[1] == "prepare" {
				ms, _ := strconv.Atoi(p[2])
				m.unfrozen += time.Duration(ms) * time.Millisecond
			}
		}
		m.steps = strings.Join(st, ",")
	}
	if c := copyLine.FindStringSubmatch(line); c != nil && strings.HasPrefix(line, "restored in ") {
		m.copy = c[1]
	}
}

// runMigrate runs `swarmckpt migrate stackName --to NODE --copy MODE` and times it
// by its output lines.
func (p *product) runMigrate(stackName, to, copyMode string) (migration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, "migrate", stackName, "--to", to, "--copy", copyMode)
	cmd.Env = p.env
	var out strings.Builder
	cmd.Stderr = &out
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return migration{}, err
	}
	var m migration
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return migration{}, err
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		m.parseLine(sc.Text(), time.Since(t0))
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	m.wall = time.Since(t0)
	if err != nil {
		return m, fmt.Errorf("swarmckpt migrate %s --to %s --copy %s: %w: %s", stackName, to, copyMode, err, tailOf(out.String(), 1500))
	}
	if m.copy != copyMode {
		return m, fmt.Errorf("migrate --copy %s migrated with copy %q: %s", copyMode, m.copy, tailOf(out.String(), 1500))
	}
	if m.running == 0 {
		// The event did not reach the CLI before it ended: the wall time bounds it.
		m.running = m.wall
	}
	return m, nil
}

// migrate deploys a memhog stack of mib MiB on node 1 and migrates it to node 2 with
// copy mode; for post-copy, which moves standalone containers only, as productCopies
// says. It returns the timed migrations.
func (p *product) migrate(mib int, copyMode, stackName string) ([]timedMigration, error) {
	dir, err := os.MkdirTemp("", "dpbench-product-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	subnet, err := p.freeSubnet()
	if err != nil {
		return nil, err
	}
	compose := fmt.Sprintf(`version: "3.8"
services:
  hog:
    image: swarmckpt/memhog:dev
    command: ["--mib", "%d", "--dirty-fraction", "0", "--listen", ":8080"]
    networks: [net]
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
      labels:
        swarmckpt.enable: "true"
networks:
  net:
    driver: overlay
    attachable: true
    ipam:
      config:
        - subnet: %s
`, mib, subnet)
	file := filepath.Join(dir, "hog.yml")
	if err := os.WriteFile(file, []byte(compose), 0o600); err != nil {
		return nil, err
	}
	// Placed on node 1 by pausing node 2 while it is deployed, not by a constraint:
	// migrate honours the service's hostname constraints (a pin to node 1 would
	// leave it no target).
	active := func() { _, _ = p.nodes[0].docker("node", "update", "--availability", "active", p.nodeName(1)) }
	if _, err := p.nodes[0].docker("node", "update", "--availability", "pause", p.nodeName(1)); err != nil {
		return nil, err
	}
	defer active()
	defer p.removeStack(stackName)
	if _, err := p.ctl(5*time.Minute, "lab", "deploy", "--name", p.lab, "--images", p.workloads, file, stackName); err != nil {
		return nil, err
	}
	// Running, its memory filled.
	n := p.nodes[0]
	var id string
	for i := 0; ; i++ {
		id, _ = n.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+stackName+"_hog")
		if id != "" {
			if out, _ := n.docker("logs", id); strings.Contains(out, "memory filled") {
				break
			}
		}
		if i > 1200 {
			return nil, fmt.Errorf("stack %s: memhog did not fill %d MiB on %s within 2 min", stackName, mib, p.nodeName(0))
		}
		time.Sleep(100 * time.Millisecond)
	}
	active()
	type step struct {
		mode, copy, to string
		timed          bool
	}
	steps := []step{{copyMode, copyMode, p.nodeName(1), true}}
	if copyMode == "post-copy" {
		steps = []step{{"direct", "direct", p.nodeName(1), false}, {"direct-standalone", "direct", p.nodeName(0), true}, {"post-copy", "post-copy", p.nodeName(1), true}}
	}
	var timed []timedMigration
	for _, st := range steps {
		syscall.Sync()
		m, err := p.runMigrate(stackName, st.to, st.copy)
		// The snapshot's sets (up to 1 GiB each) go with it.
		if m.snapshot != "" {
			defer func() { _, _ = p.ctl(time.Minute, "rm", m.snapshot) }()
		}
		if err != nil {
			return nil, fmt.Errorf("%s to %s: %w", st.mode, st.to, err)
		}
		if st.timed {
			timed = append(timed, timedMigration{st.mode, m})
		}
	}
	return timed, nil
}

// removeStack removes the stack and the containers its migration restored.
func (p *product) removeStack(stackName string) {
	for _, n := range p.nodes {
		if ids, _ := n.docker("ps", "-aq", "--filter", "label=com.docker.stack.namespace="+stackName); ids != "" {
			_, _ = n.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	}
	_, _ = p.nodes[0].docker("stack", "rm", stackName)
	for i := 0; i < 300; i++ {
		if out, _ := p.nodes[0].docker("network", "ls", "-q", "--filter", "name="+stackName+"_net"); out == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dockerPath times Docker's own migration of a memhog of mib MiB: checkpoint (exit)
// on node 1, copy the checkpoint into a container created on node 2, start it from
// the checkpoint.
func (p *product) dockerPath(mib int, name string) (time.Duration, error) {
	src, dst := p.nodes[0], p.nodes[1]
	args := []string{"swarmckpt/memhog:dev", "--mib", strconv.Itoa(mib), "--dirty-fraction", "0", "--listen", ":8080"}
	defer func() { _, _ = src.docker("rm", "-f", name); _, _ = dst.docker("rm", "-f", name) }()
	if _, err := src.docker(append([]string{"run", "-d", "--name", name}, args...)...); err != nil {
		return 0, err
	}
	for i := 0; ; i++ {
		if out, _ := src.docker("logs", name); strings.Contains(out, "memory filled") {
			break
		}
		if i > 1200 {
			return 0, fmt.Errorf("%s did not fill its memory within 2 min", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srcID, err := src.docker("inspect", "-f", "{{.Id}}", name)
	if err != nil {
		return 0, err
	}
	syscall.Sync()
	t0 := time.Now()
	if _, err := src.docker("checkpoint", "create", name, "cp"); err != nil {
		return 0, err
	}
	dstID, err := dst.docker(append([]string{"create", "--name", name}, args...)...)
	if err != nil {
		return 0, err
	}
	from := filepath.Join(src.dataRoot, "containers", srcID, "checkpoints", "cp")
	to := filepath.Join(dst.dataRoot, "containers", dstID, "checkpoints")
	if err := os.MkdirAll(to, 0o700); err != nil {
		return 0, err
	}
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("copy the checkpoint: %w: %s", err, out)
	}
	if _, err := dst.docker("start", "--checkpoint", "cp", name); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// raw times a plain `criu dump` of a process holding mib MiB into tmpfs and `criu
// restore` from there: no runc, no Docker, no transfer.
func (p *product) raw(mib int) (time.Duration, error) {
	dir, err := os.MkdirTemp("/dev/shm", "dpbench-raw-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	log := filepath.Join(dir, "hog.log")
	lf, err := os.Create(log)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(p.dptest, "memhog", strconv.Itoa(mib))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return 0, err
	}
	lf.Close()
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	defer func() { _ = cmd.Process.Kill(); <-waited }()
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "sum ") {
			break
		}
		if i > 1200 {
			return 0, fmt.Errorf("raw memhog did not fill its memory within 2 min")
		}
		time.Sleep(100 * time.Millisecond)
	}
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o700); err != nil {
		return 0, err
	}
	pidfile := filepath.Join(dir, "restored.pid")
	t0 := time.Now()
	if out, err := exec.Command("criu", "dump", "-t", strconv.Itoa(cmd.Process.Pid), "-D", images, "-o", "dump.log").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("criu dump: %w: %s (log %s)", err, out, filepath.Join(images, "dump.log"))
	}
	<-waited
	if out, err := exec.Command("criu", "restore", "-d", "-D", images, "-o", "restore.log", "--pidfile", pidfile).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("criu restore: %w: %s", err, out)
	}
	took := time.Since(t0)
	if b, err := os.ReadFile(pidfile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return took, nil
}

// runProduct runs the product case for mib, reps times, and prints its lines; it
// returns the medians (downtime by copy mode, the Docker path, raw).
func (p *product) run(mib, reps int, stamp string) (map[string]time.Duration, error) {
	downs := map[string][]time.Duration{}
	var dockers, raws []time.Duration
	for r := 0; r < reps; r++ {
		d, err := p.dockerPath(mib, fmt.Sprintf("bench-dockerpath-%d-%s-%d", mib, stamp, r))
		if err != nil {
			return nil, fmt.Errorf("docker path: %w", err)
		}
		dockers = append(dockers, d)
		rw, err := p.raw(mib)
		if err != nil {
			return nil, fmt.Errorf("raw criu: %w", err)
		}
		raws = append(raws, rw)
		for i, copyMode := range productCopies {
			ms, err := p.migrate(mib, copyMode, fmt.Sprintf("bp%d%s%d%d", mib, stamp, r, i))
			if err != nil {
				return nil, fmt.Errorf("product migrate --copy %s: %w", copyMode, err)
			}
			for _, m := range ms {
				t, steps := m.downtime(), m.steps
				downs[m.mode] = append(downs[m.mode], t)
				if steps == "" {
					steps = "-"
				}
				fmt.Printf("BENCH migrate-product size_mib=%d copy=%s downtime_s=%.3f vs_docker_path=%.1fx vs_raw=%.2f docker_path_s=%.3f raw_s=%.3f until_restored_s=%.3f wall_s=%.3f steps_ms=%s\n",
					mib, m.mode, t.Seconds(), d.Seconds()/t.Seconds(), t.Seconds()/rw.Seconds(), d.Seconds(), rw.Seconds(), m.running.Seconds(), m.wall.Seconds(), steps)
			}
		}
	}
	med := map[string]time.Duration{}
	for mode, d := range downs {
		_, med[mode], _ = spread(d)
	}
	_, med["docker-path"], _ = spread(dockers)
	_, med["raw"], _ = spread(raws)
	return med, nil
}

// summary prints the targets as BENCH summary lines.
type summary struct {
	// product: by size, the medians of product.run.
	product map[int]map[string]time.Duration
	// dumpVsRunc: by size, median ours/runc of the dump case; restoreVsFloor: by
	// size, median (restore vs_docker) / (docker_vs_floor).
	dumpVsRunc, restoreVsFloor map[int]float64
	// postCopy, coldDirect: by size, median downtimes of the data-plane's post-copy
	// and cold-direct migrations.
	postCopy, coldDirect map[int]time.Duration
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (s summary) print(sizes []int) {
	for _, mib := range sizes {
		if med, ok := s.product[mib]; ok {
			for _, mode := range productModes {
				if med[mode] == 0 {
					continue
				}
				r := med["docker-path"].Seconds() / med[mode].Seconds()
				fmt.Printf("BENCH summary target=product_vs_docker_path size_mib=%d copy=%s value=%.1fx want=>=15x met=%s\n", mib, mode, r, met(r >= 15))
			}
			r := med["direct"].Seconds() / med["raw"].Seconds()
			fmt.Printf("BENCH summary target=direct_vs_raw size_mib=%d value=%.2f want=<=1.3 met=%s\n", mib, r, met(r <= 1.3))
		}
		measured := false
		if med, ok := s.product[mib]; ok && med["post-copy"] > 0 && med["direct-standalone"] > 0 {
			r := med["post-copy"].Seconds() / med["direct-standalone"].Seconds()
			fmt.Printf("BENCH summary target=postcopy_vs_cold_direct size_mib=%d source=product value=%.2f want=<=0.25 met=%s why=%q\n", mib, r, met(r <= 0.25),
				"product migrate downtimes (from the steps that freeze until the container runs) of one standalone container: post-copy vs direct-standalone")
			measured = true
		}
		if pc, ok := s.postCopy[mib]; ok && s.coldDirect[mib] > 0 {
			r := pc.Seconds() / s.coldDirect[mib].Seconds()
			fmt.Printf("BENCH summary target=postcopy_vs_cold_direct size_mib=%d source=data-plane value=%.2f want=<=0.25 met=%s why=%q\n", mib, r, met(r <= 0.25),
				"data plane (worker API): the cases post-copy and cold-direct")
			measured = true
		}
		if !measured {
			fmt.Printf("BENCH summary target=postcopy_vs_cold_direct size_mib=%d met=not-measured why=%q\n", mib,
				"run --cases product (product migrate), or post-copy,cold-direct (the worker's ratio)")
		}
		if v, ok := s.dumpVsRunc[mib]; ok {
			fmt.Printf("BENCH summary target=dump_vs_runc size_mib=%d value=%.2f want=<=1.0 met=%s\n", mib, v, met(v <= 1.0))
		}
		if v, ok := s.restoreVsFloor[mib]; ok && mib == 64 {
			fmt.Printf("BENCH summary target=restore_vs_docker_of_floor_ratio size_mib=%d value=%.2f want=>=0.9 met=%s\n", mib, v, met(v >= 0.9))
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
//	BENCH migrate-product size_mib=N copy=MODE downtime_s=.. vs_docker_path=..x vs_raw=.. docker_path_s=.. raw_s=.. steps_ms=STEP:MS,...
//
// downtime_s is the wall time of the `swarmckpt migrate` command: an upper bound of the
// container's downtime (it includes resolving the stack and planning, before anything
// is frozen), compared with the whole Docker path and the whole raw dump+restore.
// Then the targets, one line each (medians over the repetitions):
//
//	BENCH summary target=NAME size_mib=N value=.. want=.. met=yes|no|not-measured [why=".."]

// productCopies are the copy modes the product case migrates with.
var productCopies = []string{"streamed", "direct"}

// product runs the product case for every size; it returns the medians per copy mode
// by size for the summary.
type product struct {
	bin, lab, workloads, dptest string
	env                         []string
	nodes                       []node
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

// migrate deploys a memhog stack of mib MiB on node 1, migrates it to node 2
// with copy mode, and returns the migrate command's wall time and the migration's
// own step times (MigrateResult.Steps) as "plan:MS,snapshot:MS,dump:MS,...", empty
// from a coordinator without them.
func (p *product) migrate(mib int, copyMode, stackName string) (time.Duration, string, error) {
	dir, err := os.MkdirTemp("", "dpbench-product-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
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
        - subnet: 10.240.9.0/24
`, mib)
	file := filepath.Join(dir, "hog.yml")
	if err := os.WriteFile(file, []byte(compose), 0o600); err != nil {
		return 0, "", err
	}
	// Placed on node 1 by pausing node 2 while it is deployed, not by a constraint:
	// migrate honours the service's hostname constraints (a pin to node 1 would
	// leave it no target).
	active := func() { _, _ = p.nodes[0].docker("node", "update", "--availability", "active", p.nodeName(1)) }
	if _, err := p.nodes[0].docker("node", "update", "--availability", "pause", p.nodeName(1)); err != nil {
		return 0, "", err
	}
	defer active()
	if _, err := p.ctl(5*time.Minute, "lab", "deploy", "--name", p.lab, "--images", p.workloads, file, stackName); err != nil {
		return 0, "", err
	}
	defer p.removeStack(stackName)
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
			return 0, "", fmt.Errorf("stack %s: memhog did not fill %d MiB on %s within 2 min", stackName, mib, p.nodeName(0))
		}
		time.Sleep(100 * time.Millisecond)
	}
	active()
	syscall.Sync()
	t0 := time.Now()
	out, err := p.ctl(10*time.Minute, "migrate", stackName, "--to", p.nodeName(1), "--copy", copyMode, "--output", "json")
	took := time.Since(t0)
	if err != nil {
		return 0, "", err
	}
	var res struct {
		Snapshot struct {
			ID string `json:"id"`
		} `json:"snapshot"`
		Copy  string `json:"copy"`
		Steps []struct {
			Step string `json:"step"`
			MS   int64  `json:"ms"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, "", fmt.Errorf("migrate's JSON: %w: %s", err, tailOf(out, 500))
	}
	if res.Copy != copyMode {
		return 0, "", fmt.Errorf("migrate --copy %s migrated with copy %q", copyMode, res.Copy)
	}
	var st []string
	for _, s := range res.Steps {
		st = append(st, fmt.Sprintf("%s:%d", s.Step, s.MS))
	}
	// The snapshot's sets (1 GiB each) go with it.
	if res.Snapshot.ID != "" {
		defer func() { _, _ = p.ctl(time.Minute, "rm", res.Snapshot.ID) }()
	}
	return took, strings.Join(st, ","), nil
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
		for i, mode := range productCopies {
			t, steps, err := p.migrate(mib, mode, fmt.Sprintf("bp%d%s%d%d", mib, stamp, r, i))
			if err != nil {
				return nil, fmt.Errorf("product migrate --copy %s: %w", mode, err)
			}
			downs[mode] = append(downs[mode], t)
			if steps == "" {
				steps = "-"
			}
			fmt.Printf("BENCH migrate-product size_mib=%d copy=%s downtime_s=%.3f vs_docker_path=%.1fx vs_raw=%.2f docker_path_s=%.3f raw_s=%.3f steps_ms=%s\n",
				mib, mode, t.Seconds(), d.Seconds()/t.Seconds(), t.Seconds()/rw.Seconds(), d.Seconds(), rw.Seconds(), steps)
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
			for _, mode := range productCopies {
				r := med["docker-path"].Seconds() / med[mode].Seconds()
				fmt.Printf("BENCH summary target=product_vs_docker_path size_mib=%d copy=%s value=%.1fx want=>=15x met=%s\n", mib, mode, r, met(r >= 15))
			}
			r := med["direct"].Seconds() / med["raw"].Seconds()
			fmt.Printf("BENCH summary target=direct_vs_raw size_mib=%d value=%.2f want=<=1.3 met=%s\n", mib, r, met(r <= 1.3))
		}
		if pc, ok := s.postCopy[mib]; ok && s.coldDirect[mib] > 0 {
			r := pc.Seconds() / s.coldDirect[mib].Seconds()
			fmt.Printf("BENCH summary target=postcopy_vs_cold_direct size_mib=%d value=%.2f want=<=0.25 met=%s why=%q\n", mib, r, met(r <= 0.25),
				"data plane (worker API), not product migrate: post-copy is not in migrate yet")
		} else {
			fmt.Printf("BENCH summary target=postcopy_vs_cold_direct size_mib=%d met=not-measured why=%q\n", mib,
				"post-copy is not in migrate yet; run the data-plane cases post-copy and cold-direct for the worker's ratio")
		}
		if v, ok := s.dumpVsRunc[mib]; ok {
			fmt.Printf("BENCH summary target=dump_vs_runc size_mib=%d value=%.2f want=<=1.0 met=%s\n", mib, v, met(v <= 1.0))
		}
		if v, ok := s.restoreVsFloor[mib]; ok && mib == 64 {
			fmt.Printf("BENCH summary target=restore_vs_docker_of_floor_ratio size_mib=%d value=%.2f want=>=0.9 met=%s\n", mib, v, met(v >= 0.9))
		}
	}
}

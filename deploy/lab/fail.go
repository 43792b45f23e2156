package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// FailReport says what Fail killed.
type FailReport struct {
	Node string `json:"node"`
	// Processes are the PIDs killed with SIGKILL: dockerd, containerd, shims, the
	// node's worker and agent and their supervisors.
	Processes int `json:"processes"`
	// Containers is how many containers' processes were killed.
	Containers int `json:"containers"`
	// At is when the link went down.
	At time.Time `json:"at"`
}

// Fail makes lab node name fail for real, as a machine that loses power: its link is
// cut first (the lab switch's port of the node goes down), then every process of the
// node is killed with SIGKILL at once: its supervisors (so nothing restarts), its
// swarmckpt worker and agent, dockerd, containerd, the shims and every container's
// processes. Nothing is shut down cleanly: the swarm and swarmckpt learn of it only
// from missing heartbeats. The node's disk (data root, image sets) stays, as a
// powered-off machine's would. The manager node cannot fail (it is the lab's only
// swarm manager). Recover brings the node back.
func Fail(ctx context.Context, log *slog.Logger, p Plan, name string) (FailReport, error) {
	n, ok := p.NodeByName(name)
	if !ok {
		return FailReport{}, fmt.Errorf("lab %s has no node %q (nodes %s)", p.Name, name, nodeNames(p))
	}
	if n.Manager {
		return FailReport{}, fmt.Errorf("node %s is the lab's only swarm manager: failing it takes the swarm down with it; fail a worker node (%s)", name, strings.Join(nodeNames(p)[1:], ", "))
	}
	if os.Geteuid() != 0 {
		return FailReport{}, errors.New("lab fail needs root (it kills the node's processes and cuts its link); run it as root")
	}
	rep := FailReport{Node: name}
	if _, err := sh(ctx, "ip", "-n", p.Switch, "link", "set", switchPort(n), "down"); err != nil {
		return rep, fmt.Errorf("node %s: cut its link: %w", name, err)
	}
	rep.At = time.Now()
	pids := nodeProcs(p, n)
	for _, pid := range pids {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			rep.Processes++
		}
	}
	ids, _ := filepath.Glob(filepath.Join(n.DataRoot, "containers", "*"))
	for _, d := range ids {
		id := filepath.Base(d)
		if len(cgroupDirs(id)) > 0 {
			killCgroup(id)
			rep.Containers++
		}
	}
	waitPids(ctx, 10*time.Second, pids)
	var alive []int
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			alive = append(alive, pid)
		}
	}
	if len(alive) > 0 {
		return rep, fmt.Errorf("node %s: processes %v survived SIGKILL; run 'swarmckpt lab down --name %s'", name, alive, p.Name)
	}
	log.Info("node failed: link cut, every process killed", "component", "lab", "node", name, "processes", rep.Processes, "containers", rep.Containers)
	return rep, nil
}

// Recover brings a node Fail killed back: its link up, its dockerd started (with the
// data root it had: the swarm sees the node rejoin), and, in a lab with daemons, its
// worker and agent under their supervisors. It waits until the node's engine is back
// in the swarm and the manager reports the node ready.
func Recover(ctx context.Context, log *slog.Logger, p Plan, name string) error {
	n, ok := p.NodeByName(name)
	if !ok {
		return fmt.Errorf("lab %s has no node %q (nodes %s)", p.Name, name, nodeNames(p))
	}
	if os.Geteuid() != 0 {
		return errors.New("lab recover needs root; run it as root")
	}
	if pids := nodeProcs(p, n); len(pids) > 0 {
		return fmt.Errorf("node %s has not failed: processes %v of it run; 'swarmckpt lab fail %s' first", name, pids, name)
	}
	if _, err := sh(ctx, "ip", "-n", p.Switch, "link", "set", switchPort(n), "up"); err != nil {
		return fmt.Errorf("node %s: link up: %w", name, err)
	}
	if err := startDockerd(ctx, p, n); err != nil {
		return err
	}
	if d := p.Daemons; d != nil {
		if err := startNodeDaemons(ctx, p, n, filepath.Join(d.Dir, "worker.token")); err != nil {
			return err
		}
	}
	mc, err := nodeClient(p.Manager())
	if err != nil {
		return err
	}
	defer mc.Close()
	nc, err := nodeClient(n)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Ready: the node's own engine is connected to the swarm again (a manager that has
	// not yet missed the node still reports it ready from before) and the manager
	// reports it ready.
	deadline := time.Now().Add(90 * time.Second)
	for {
		info, err := nc.Info(ctx)
		if err == nil && info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
			var nodes []swarm.Node
			nodes, err = mc.NodeList(ctx, swarm.NodeListOptions{})
			for _, nd := range nodes {
				if nd.Description.Hostname == name && nd.Status.State == swarm.NodeStateReady {
					log.Info("node recovered: link up, dockerd running and in the swarm, the manager reports it ready", "component", "lab", "node", name)
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: dockerd runs but is not back in the swarm, ready, after 90s (err %v); log %s", name, err, n.LogFile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// switchPort is node n's port on the lab switch (its veth's peer).
func switchPort(n Node) string { return fmt.Sprintf("p%d", n.Index) }

func nodeNames(p Plan) []string {
	var out []string
	for _, n := range p.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// nodeProcs lists node n's processes, supervisors first: everything naming its run or
// data directory (dockerd, containerd, shims, the worker: its --exec-root) and every
// swarmckpt process started for it (--node NAME: worker, agent, their supervisors).
func nodeProcs(p Plan, n Node) []int {
	run, data := filepath.Join(p.RunDir, n.Name)+"/", filepath.Join(p.DataDir, n.Name)+"/"
	pids := procsMentioning(run, data)
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || slices.Contains(pids, pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || !strings.HasPrefix(filepath.Base(args[0]), "swarmckpt") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--node" && args[i+1] == n.Name {
				pids = append(pids, pid)
				break
			}
		}
	}
	supervisor := func(pid int) bool {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		return strings.Contains(string(b), "\x00lab\x00supervise\x00")
	}
	slices.SortStableFunc(pids, func(a, b int) int {
		sa, sb := supervisor(a), supervisor(b)
		switch {
		case sa && !sb:
			return -1
		case sb && !sa:
			return 1
		}
		return 0
	})
	return pids
}

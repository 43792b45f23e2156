package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// nodeProcs finds a node's processes by its directories and by --node NAME on a
// swarmckpt command line, the supervisors first, and nothing of another node.
func TestNodeProcs(t *testing.T) {
	c := DefaultConfig()
	c.Name = fmt.Sprintf("fp%d", os.Getpid()%100000)
	c.RunDir, c.DataDir = t.TempDir(), t.TempDir()
	c.Nodes = 3
	p := NewPlan(c, 1)
	n := p.Nodes[1]
	start := func(args ...string) int {
		t.Helper()
		// /bin/sh whose command line reads args[0] -c ... args[1:].
		cmd := exec.Command("/bin/sh")
		cmd.Args = append([]string{args[0], "-c", "sleep 60; true"}, args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	dockerd := start("dockerd", "--exec-root", filepath.Join(p.RunDir, n.Name, "exec"))
	agent := start("/usr/local/bin/swarmckpt", "agent", "--node", n.Name, "--data-dir", "/x")
	super := start("swarmckpt", "lab", "supervise", "--", "swarmckpt", "agent", "--node", n.Name)
	start("swarmckpt", "agent", "--node", n.Name+"0")                                 // another node's name as prefix
	start("swarmckpt", "agent", "--node", p.Nodes[2].Name)                            // another node
	start("dockerd", "--exec-root", filepath.Join(p.RunDir, p.Nodes[2].Name, "exec")) // another node's dockerd
	start("other", "--node", n.Name)                                                  // not swarmckpt
	got := nodeProcs(p, n)
	if len(got) != 3 || got[0] != super || !slices.Contains(got, dockerd) || !slices.Contains(got, agent) {
		t.Fatalf("nodeProcs = %v, want the supervisor %d first, then dockerd %d and the agent %d", got, super, dockerd, agent)
	}
	if switchPort(n) != "p2" {
		t.Fatalf("switchPort = %s, want p2", switchPort(n))
	}
}

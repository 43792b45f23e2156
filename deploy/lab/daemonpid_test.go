package lab

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestForkOfParentTellsAChildFromTheDaemon: a child with its parent's command line
// (what a daemon's child is between fork and exec) is told apart from the daemon
// itself, whose parent (here go test, in the lab its supervisor) runs another command
// line (fault seed 1500 killed a worker's child about to exec nsenter for an unlock,
// not the worker).
func TestForkOfParentTellsAChildFromTheDaemon(t *testing.T) {
	if os.Getenv("SWARMCKPT_FORK_CHILD") != "" {
		time.Sleep(time.Minute) // the child: wait to be killed
		os.Exit(0)
	}
	self, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Skipf("SKIP: no /proc/self/cmdline: %v", err)
	}
	if forkOfParent(strconv.Itoa(os.Getpid()), self) {
		t.Fatal("this test process taken for a fork of its parent (go test)")
	}
	// The same command line as this process: the test binary with its own arguments.
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), "SWARMCKPT_FORK_CHILD=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := strconv.Itoa(cmd.Process.Pid)
	var child []byte
	for deadline := time.Now().Add(5 * time.Second); string(child) != string(self); time.Sleep(5 * time.Millisecond) {
		if child, _ = os.ReadFile("/proc/" + pid + "/cmdline"); time.Now().After(deadline) {
			t.Fatalf("child's command line %q, want this process's %q", child, self)
		}
	}
	if !forkOfParent(pid, child) {
		t.Fatal("a child with its parent's command line not told apart from its parent")
	}
}

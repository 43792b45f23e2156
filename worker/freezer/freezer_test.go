package freezer_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/freezer/freezertest"
)

var seq atomic.Int64

func TestFakeConformance(t *testing.T) {
	freezertest.Run(t, freezer.NewFake(), func(t *testing.T) (container.Ref, func() bool) {
		n := seq.Add(1)
		return container.Ref{ID: fmt.Sprint("c", n), Pid: int(n)}, nil
	})
}

// cgroupProcess puts a busy shell loop into a fresh v1 freezer cgroup; progressing
// reports whether its CPU time grows over 100 ms.
func cgroupProcess(t *testing.T) (container.Ref, func() bool) {
	dir := filepath.Join("/sys/fs/cgroup/freezer", fmt.Sprintf("swarmckpt-freezertest-%d-%d", os.Getpid(), seq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.Remove(dir)
	})
	cpu := func() int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return u + s
	}
	progressing := func() bool {
		a := cpu()
		time.Sleep(150 * time.Millisecond)
		return cpu() > a
	}
	return container.Ref{ID: filepath.Base(dir), Pid: pid}, progressing
}

func TestCgroupConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: the real freezer needs root to create cgroups")
	}
	if _, err := os.Stat("/sys/fs/cgroup/freezer"); err != nil {
		t.Skip("SKIPPED LOUDLY: no cgroup v1 freezer hierarchy at /sys/fs/cgroup/freezer; the v2 path is exercised on v2 hosts only")
	}
	freezertest.Run(t, &freezer.Cgroup{}, cgroupProcess)
}

package coordinator_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/space"
)

// spaceLogRE is a worker's log line of a disk-space check (worker/dumpspace_linux.go).
var spaceLogRE = regexp.MustCompile(`msg="disk space for dumps checked".* dumps=(\d+) need=(\d+) free=(\d+) .*fits=(true|false)`)

// requireDumpSpaceChecked: the workers checked the disk space of their dumps on real
// containers before accepting the snapshot's plan: each check was logged, fit, and
// counted memory read from the containers' cgroups (more than the margin alone, which
// is all an unreadable cgroup leaves).
func (e *e2e) requireDumpSpaceChecked(t *testing.T) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(e.dir, "worker-"+e.name+"-*.log"))
	seen := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, m := range spaceLogRE.FindAllStringSubmatch(string(b), -1) {
			seen++
			dumps, _ := strconv.ParseInt(m[1], 10, 64)
			need, _ := strconv.ParseInt(m[2], 10, 64)
			free, _ := strconv.ParseInt(m[3], 10, 64)
			t.Logf("%s: %d dumps, estimated %.1f MiB, %.1f GiB free", filepath.Base(l), dumps, float64(need)/(1<<20), float64(free)/(1<<30))
			if m[4] != "true" || need > free {
				t.Errorf("%s: %d dumps need %d bytes, %d free, fits=%s: a false refusal on the lab", filepath.Base(l), dumps, need, free, m[4])
			}
			if need <= dumps*space.MarginMin {
				t.Errorf("%s: %d dumps estimated at %d bytes, the margin alone: the containers' memory was not read from their cgroups", filepath.Base(l), dumps, need)
			}
		}
	}
	if seen == 0 {
		t.Errorf("no worker logged a disk-space check of its dumps (%d logs)", len(logs))
	}
}

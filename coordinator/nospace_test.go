package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/worker/space"
)

// TestSnapshotRefusedBeforeAnyLockWhenANodeHasNoSpace (disk-space preflight): lab-1
// runs two holders of 100 MiB each; its sets' file system has 200 MiB free, room for
// either dump but not both with their margins (16 MiB each: 232 MiB). The node refuses the plan (reason
// no_space) naming itself, the file system, the free and needed bytes, the containers
// and what to do, before any container of the stack is locked or frozen; the
// snapshot is aborted and the stack's lock released.
func TestSnapshotRefusedBeforeAnyLockWhenANodeHasNoSpace(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	ex := e.execs["lab-1"]
	ex.Disk = &space.Disk{Dir: "/var/lib/docker/swarmckpt/sets", Mount: "/var/lib/docker", Free: 200 << 20}
	ex.MemoryUse = map[string]int64{"ctr1": 100 << 20, "ctr4": 100 << 20}
	res, err := e.snapshot("snap-ns")
	if err == nil {
		t.Fatal("snapshot went ahead with 232 MiB to write on 200 MiB free")
	}
	for _, want := range []string{"node lab-1 refused the snapshot (no_space)", "/var/lib/docker/swarmckpt/sets (mounted at /var/lib/docker)",
		"200.0 MiB free", "needs about 232.0 MiB", "bank_holder.1 100.0 MiB in memory, bank_holder.4 100.0 MiB in memory", "swarmckpt rm"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	e.requireRefusedUntouched(t, res)
	if asked := ex.SpaceAsked(); len(asked) != 1 || len(asked[0]) != 2 {
		t.Errorf("lab-1 was asked about %v, want its two dumps once", asked)
	}
}

// requireRefusedUntouched: a snapshot refused before it began (res its result) is
// recorded as aborted, left no container held and released the stack's lock.
func (e *env) requireRefusedUntouched(t *testing.T, res *api.SnapshotResult) {
	t.Helper()
	if res == nil || res.Snapshot.State != store.StateAborted {
		t.Fatalf("manifest not recorded as aborted: %+v", res)
	}
	if h := e.held(); len(h) != 0 {
		t.Fatalf("containers held after a refused snapshot: %v", h)
	}
	if _, err := e.store.LockStack(context.Background(), "bank", "probe", time.Second); err != nil {
		t.Fatalf("stack lock not released: %v", err)
	}
}

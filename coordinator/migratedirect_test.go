package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestMigrateDirect: migrate --copy direct dumps every moving container straight into
// its target (worker DumpWith with Into, the container held: parked), so no set stays
// on the dumping node and the manifest names the target as the set's node; the
// restore uses the set in place there (no transfer) and keeps it (the snapshot's only
// copy). A failed restore rolls back by sending the sets back from the target, which
// keeps them; a failed direct dump aborts the snapshot and every container runs on.
func TestMigrateDirect(t *testing.T) {
	t.Run("Moved", func(t *testing.T) {
		e, _, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "dir1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect})
		if err != nil {
			t.Fatal(err)
		}
		if res.Copy != api.CopyDirect {
			t.Errorf("result says copy %q, want %q", res.Copy, api.CopyDirect)
		}
		m, err := e.store.Get(ctx, "dir1")
		if err != nil {
			t.Fatal(err)
		}
		for i, nodeName := range bankNodes {
			key := fmt.Sprintf("bank_holder.%d", i+1)
			set := node.SetID("dir1", key)
			if res.Restore.Targets[key] != "lab-3" {
				t.Errorf("%s restored on %s, want lab-3", key, res.Restore.Targets[key])
			}
			if !e.execs["lab-3"].HasSet(set) {
				t.Errorf("%s: lab-3 does not hold the set after the migration (the snapshot's only copy, kept by the restore in place)", key)
			}
			c := m.Containers[i]
			if c.Images == nil || c.Images.Node != "lab-3" {
				t.Errorf("%s: manifest's image set node %+v, want lab-3", key, c.Images)
			}
			if nodeName == "lab-3" {
				if c.Direct {
					t.Errorf("%s did not move but is marked direct", key)
				}
				if c.Images.PagesHashedBy != "" {
					t.Errorf("%s did not move but its pages are recorded as hashed by %q", key, c.Images.PagesHashedBy)
				}
				continue
			}
			if got := e.execs[nodeName].DumpedInto()[set]; got != "lab-3" {
				t.Errorf("%s (on %s): dumped into %q, want lab-3", key, nodeName, got)
			}
			if got := e.execs[nodeName].Streamed()[set]; got != "" {
				t.Errorf("%s (on %s): streamed (DumpTo) to %q, want a direct dump only", key, nodeName, got)
			}
			if e.execs[nodeName].HasSet(set) {
				t.Errorf("%s: the dumping node %s kept a set (direct writes none there)", key, nodeName)
			}
			if !c.Direct || c.StreamedTo != "lab-3" {
				t.Errorf("%s: manifest direct=%v streamed_to=%q, want direct to lab-3", key, c.Direct, c.StreamedTo)
			}
			// The record says who hashed the pages: the target, on arrival (CRIU's
			// page-server protocol has no checksum).
			if c.Images == nil || c.Images.PagesHashedBy != "lab-3" {
				t.Errorf("%s: manifest's image set %+v, want its pages hashed by lab-3", key, c.Images)
			}
		}
		if tr := e.eventsOf("transferred"); len(tr) != 0 {
			t.Errorf("the restore transferred sets already on their target: %+v", tr)
		}
		if got := len(e.execs["lab-3"].Restored()); got != 5 {
			t.Errorf("%d containers restored on lab-3, want 5", got)
		}
		// The originals were ended after the commit, not by their dump.
		for _, nodeName := range []string{"lab-1", "lab-2"} {
			if len(e.execs[nodeName].Stopped()) == 0 {
				t.Errorf("no container ended on %s after the migration", nodeName)
			}
		}
		rm, err := e.remove("dir1")
		if err != nil || rm.ImagesRemoved != 5 || len(rm.Warnings) != 0 {
			t.Fatalf("rm of the migration's snapshot: %+v %v, want its 5 image sets deleted (on lab-3)", rm, err)
		}
		for i := range bankNodes {
			if set := node.SetID("dir1", fmt.Sprintf("bank_holder.%d", i+1)); e.execs["lab-3"].HasSet(set) {
				t.Errorf("%s left on lab-3 after rm", set)
			}
		}
	})
	t.Run("FailedRestoreRollsBackKeepingTheSets", func(t *testing.T) {
		e, sw, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.execs["lab-3"].FailRestore = map[string]error{node.SetID("dir2", "bank_holder.2"): errors.New("criu: boom")}
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "dir2", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect})
		if err == nil || !strings.Contains(err.Error(), "originals restored where they were") || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("direct migrate with a failing target: %v", err)
		}
		// Every original runs again where it ran, restored from the target's sets.
		for i, nodeName := range bankNodes {
			prefix := fmt.Sprintf("bank_holder-%d-", i+1)
			found := false
			for _, c := range e.execs[nodeName].Restored() {
				found = found || strings.HasPrefix(c, prefix)
			}
			if !found {
				t.Errorf("bank_holder.%d not restored on its original node %s: %v", i+1, nodeName, e.execs[nodeName].Restored())
			}
			if nodeName != "lab-3" {
				for _, c := range e.execs["lab-3"].Restored() {
					if strings.HasPrefix(c, prefix) {
						t.Errorf("bank_holder.%d left restored on lab-3: %s", i+1, c)
					}
				}
			}
		}
		if r := sw.Replicas("bank_holder"); r != 0 {
			t.Errorf("bank_holder at %d replicas after a rollback that restored the originals, want 0", r)
		}
		// The snapshot's only copies are still on lab-3: nothing was lost, and the
		// snapshot can be restored again.
		for i := range bankNodes {
			if set := node.SetID("dir2", fmt.Sprintf("bank_holder.%d", i+1)); !e.execs["lab-3"].HasSet(set) {
				t.Errorf("%s: lab-3 dropped the snapshot's only copy after the failed migration", set)
			}
		}
		tr := e.eventsOf("transferred")
		if len(tr) != 4 {
			t.Errorf("%d transferred events, want 4 (the rollback sent the moved sets back from lab-3): %+v", len(tr), tr)
		}
		for _, ev := range tr {
			if !strings.Contains(ev.Message, "lab-3 ->") {
				t.Errorf("rollback transfer %q for %s, want it sent from lab-3", ev.Message, ev.Container)
			}
		}
	})
	t.Run("FailedDumpRunsOn", func(t *testing.T) {
		e, _, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// lab-1's dumps cannot reach lab-3 (its page server): the snapshot aborts.
		e.execs["lab-1"].SendTo = func(string, string) (bool, error) { return false, errors.New("connection refused") }
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "dir3", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect})
		if !errors.Is(err, api.ErrAborted) {
			t.Fatalf("direct migrate whose dump fails: %v, want an aborted snapshot", err)
		}
		waitFor(t, "every node idle after the abort", func() bool {
			for _, ex := range e.execs {
				if len(ex.Held()) > 0 {
					return false
				}
			}
			return true
		})
		for nodeName, ex := range e.execs {
			if s := ex.Stopped(); len(s) > 0 {
				t.Errorf("containers ended on %s although the migration aborted: %v", nodeName, s)
			}
			if r := ex.Restored(); len(r) > 0 {
				t.Errorf("containers restored on %s although the migration aborted: %v", nodeName, r)
			}
		}
	})
	t.Run("Refused", func(t *testing.T) {
		e, _, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, tc := range []struct {
			req  api.MigrateRequest
			want string
		}{
			// The fake workers do not announce post-copy (no userfaultfd).
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyPostCopy}, "does not announce the worker feature \"post-copy\""},
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyPostCopy, Mode: api.ModeSwarm}, "swarm starts the replacement only once that container has ended"},
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyPostCopy, Mode: api.ModeSwarm, WholeStack: true}, "post-copy needs --mode exact"},
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyPostCopy, WholeStack: true}, "drop --whole-stack"},
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyDirect, Mode: api.ModeSwarm, WholeStack: true}, "direct copies need --mode exact"},
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: "teleport"}, `unknown copy mode "teleport"`},
			// The fake workers track no soft-dirty pages (node.FeaturePreCopy).
			{api.MigrateRequest{Stack: "bank", To: "lab-3", Copy: api.CopyPreCopy}, "does not track soft-dirty pages"},
		} {
			_, err := e.svc.Migrate(ctx, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Errorf("migrate %+v: %v, want it refused with %q", tc.req, err, tc.want)
			}
		}
		for nodeName, ex := range e.execs {
			if n := len(ex.Stopped()) + len(ex.Restored()); n > 0 {
				t.Errorf("a refused migration touched %s", nodeName)
			}
		}
	})
	t.Run("OlderWorkerRefused", func(t *testing.T) {
		// lab-2's worker is older: it announces no dump-into-held, and would end a
		// held container on its direct dump. Asked explicitly, the migration is
		// refused before anything is locked, naming lab-2 and what to upgrade.
		var e *env
		e, _ = newMigrateEnv(t, func(ex *worker.Fake) {
			ex.StreamTo = func(set, to string) error { e.execs[to].PutSet(set); return nil }
			if ex.Node == "lab-2" {
				ex.OldFeatures = []string{}
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "dir4", Stack: "bank", To: "lab-3", Algorithm: "blocking", Copy: api.CopyDirect})
		for _, want := range []string{"nothing was changed", "node lab-2", node.FeatureDumpIntoHeld, "upgrade swarmckpt (worker and agent) on node lab-2"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("direct migrate with an older worker on lab-2: %v, want it refused with %q", err, want)
			}
		}
		for nodeName, ex := range e.execs {
			if n := len(ex.Stopped()) + len(ex.Restored()) + len(ex.DumpedInto()) + len(ex.Held()); n > 0 {
				t.Errorf("a refused migration touched %s", nodeName)
			}
		}
	})
}

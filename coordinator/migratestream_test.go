package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// streamingEnv is newMigrateEnv whose executors stream a migration's dumps to their
// targets, and whose Send sends nothing to a target that already holds the set, as the
// worker does (SendResult.AlreadyThere). sends counts the transfers Send really made.
func streamingEnv(t *testing.T, setup ...func(*worker.Fake)) (e *env, sw *stack.FakeSwarm, sends *atomic.Int64) {
	sends = &atomic.Int64{}
	e, sw = newMigrateEnv(t, append([]func(*worker.Fake){func(ex *worker.Fake) {
		ex.StreamTo = func(set, to string) error { e.execs[to].PutSet(set); return nil }
		ex.SendTo = func(set, to string) (bool, error) {
			if e.execs[to].HasSet(set) {
				return true, nil
			}
			sends.Add(1)
			e.execs[to].PutSet(set)
			return false, nil
		}
	}}, setup...)...)
	return e, sw, sends
}

// bankNodes is where bankStack runs bank_holder.1..5.
var bankNodes = []string{"lab-1", "lab-2", "lab-3", "lab-1", "lab-2"}

// TestMigrateStreamsImagesToTheTargets: an exact-mode migration plans its targets
// before the snapshot, and every container that moves has its dump streamed to its
// target's worker (Target.StreamTo), so that the restore transfers nothing; a
// container already on its target is dumped plainly. The dumping nodes keep their
// sets (the rollback's). After a failed migration the streamed copies are dropped.
func TestMigrateStreamsImagesToTheTargets(t *testing.T) {
	t.Run("Moved", func(t *testing.T) {
		e, _, sends := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig3", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, nodeName := range bankNodes {
			key := fmt.Sprintf("bank_holder.%d", i+1)
			set := node.SetID("mig3", key)
			want := "lab-3"
			if nodeName == "lab-3" {
				want = ""
			}
			if got := e.execs[nodeName].Streamed()[set]; got != want {
				t.Errorf("%s (on %s): dump streamed to %q, want %q", key, nodeName, got, want)
			}
			if !e.execs[nodeName].HasSet(set) {
				t.Errorf("%s: the dumping node %s lost its set", key, nodeName)
			}
			if res.Restore.Targets[key] != "lab-3" {
				t.Errorf("%s restored on %s, want lab-3", key, res.Restore.Targets[key])
			}
		}
		if n := sends.Load(); n != 0 {
			t.Errorf("the restore sent %d sets that were streamed already", n)
		}
		// The progress says so: nothing was transferred by the restore.
		tr := e.eventsOf("transferred")
		if len(tr) != 4 {
			t.Errorf("%d transferred events, want one per moved container (4): %+v", len(tr), tr)
		}
		for _, ev := range tr {
			if !strings.Contains(ev.Message, "already on lab-3") || !strings.Contains(ev.Message, "nothing sent") {
				t.Errorf("transferred event %q for %s, want it to say the images were already on lab-3", ev.Message, ev.Container)
			}
		}
		if got := len(e.execs["lab-3"].Restored()); got != 5 {
			t.Errorf("%d containers restored on lab-3, want 5", got)
		}
		// rm counts the snapshot's sets, not the copies it asked nodes to drop (the
		// four streamed copies were consumed by their restores).
		rm, err := e.remove("mig3")
		if err != nil || rm.ImagesRemoved != 5 || len(rm.Warnings) != 0 {
			t.Fatalf("rm of the migration's snapshot: %+v %v, want 5 image sets deleted", rm, err)
		}
		for i, nodeName := range bankNodes {
			if set := node.SetID("mig3", fmt.Sprintf("bank_holder.%d", i+1)); e.execs[nodeName].HasSet(set) || e.execs["lab-3"].HasSet(set) {
				t.Errorf("%s left after rm", set)
			}
		}
	})
	t.Run("FailedDropsTheCopies", func(t *testing.T) {
		e, _, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.execs["lab-3"].FailRestore = map[string]error{node.SetID("mig4", "bank_holder.2"): errors.New("criu: boom")}
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig4", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
		if err == nil || !strings.Contains(err.Error(), "originals restored where they were") {
			t.Fatalf("migrate with a failing target: %v", err)
		}
		for i, nodeName := range bankNodes {
			set := node.SetID("mig4", fmt.Sprintf("bank_holder.%d", i+1))
			if !e.execs[nodeName].HasSet(set) {
				t.Errorf("%s: the original node %s lost its set (the rollback's)", set, nodeName)
			}
			if nodeName != "lab-3" && e.execs["lab-3"].HasSet(set) {
				t.Errorf("%s: the streamed copy stayed on lab-3 after the failed migration", set)
			}
		}
	})
	t.Run("AnUndroppedCopyIsLeftToRm", func(t *testing.T) {
		e, _, _ := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// The snapshot aborts (no restore is ever tried, so no restore record names
		// lab-3) after the other dumps streamed their copies there, and lab-3 cannot
		// drop them then.
		e.execs["lab-3"].FailDump["ctr3"] = errors.New("criu: dump failed: unsupported resource")
		e.execs["lab-3"].FailDrop = errors.New("disk busy")
		// ctr3's dump fails only once another dump streamed its copy to lab-3 (else the
		// abort may come first, and no copy is ever made).
		streamed := make(chan struct{})
		e.execs["lab-3"].Stall["ctr3"] = streamed
		go func() {
			defer close(streamed)
			for ctx.Err() == nil && !e.execs["lab-3"].HasSet(node.SetID("mig6", "bank_holder.1")) {
				time.Sleep(time.Millisecond)
			}
		}()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig6", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true}); !errors.Is(err, api.ErrAborted) {
			t.Fatalf("migrate whose snapshot aborts: %v", err)
		}
		// Dumps still running when the snapshot aborted finish, and stream their copy,
		// after Migrate returned: wait until no node holds a container any more.
		waitFor(t, "every node idle after the abort", func() bool {
			for _, ex := range e.execs {
				if len(ex.Held()) > 0 {
					return false
				}
			}
			return true
		})
		left := 0
		for i, nodeName := range bankNodes {
			if nodeName != "lab-3" && e.execs["lab-3"].HasSet(node.SetID("mig6", fmt.Sprintf("bank_holder.%d", i+1))) {
				left++
			}
		}
		if left == 0 {
			t.Fatalf("no streamed copy left on lab-3, although it was told to fail its drops; dumps on lab-1: %d, lab-2: %d; %v", e.execs["lab-1"].Dumps("ctr1"), e.execs["lab-2"].Dumps("ctr2"), func() string { m, _ := e.store.Get(ctx, "mig6"); return m.Reason }())
		}
		m, err := e.store.Get(ctx, "mig6")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Containers {
			if want := map[bool]string{true: "", false: "lab-3"}[c.Node == "lab-3"]; c.StreamedTo != want {
				t.Errorf("%s (on %s): manifest says streamed to %q, want %q", c.Key(), c.Node, c.StreamedTo, want)
			}
		}
		e.execs["lab-3"].FailDrop = nil
		if _, err := e.remove("mig6"); err != nil {
			t.Fatal(err)
		}
		for i, nodeName := range bankNodes {
			set := node.SetID("mig6", fmt.Sprintf("bank_holder.%d", i+1))
			if e.execs["lab-3"].HasSet(set) || e.execs[nodeName].HasSet(set) {
				t.Errorf("%s still on lab-3 or %s after rm", set, nodeName)
			}
		}
	})
	t.Run("SwarmModeToStreams", func(t *testing.T) {
		e, sw, sends := streamingEnv(t)
		// Each task starts from the set placed for it, once the address map is there
		// (as the runtime wrapper does).
		sw.Start = func(tk stack.Task) (string, string, string) {
			ex := e.execs[tk.Node]
			if p := ex.PlacedTask(tk.Service, tk.Slot); p != nil && p.WaitMap && p.Addresses == nil {
				return "starting", "", ""
			}
			id := "ctr-" + tk.TaskID
			ex.StartTask(tk.Service, tk.Slot, id)
			return "running", id, ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig7", Stack: "bank", To: "lab-3", Mode: api.ModeSwarm, Algorithm: "blocking", WholeStack: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, nodeName := range bankNodes {
			key := fmt.Sprintf("bank_holder.%d", i+1)
			want := "lab-3"
			if nodeName == "lab-3" {
				want = ""
			}
			if got := e.execs[nodeName].Streamed()[node.SetID("mig7", key)]; got != want {
				t.Errorf("%s (on %s): dump streamed to %q, want %q", key, nodeName, got, want)
			}
			if res.Restore.Targets[key] != "lab-3" {
				t.Errorf("%s restored on %s, want lab-3", key, res.Restore.Targets[key])
			}
		}
		if n := sends.Load(); n != 0 {
			t.Errorf("the swarm-mode restore sent %d sets that were streamed already", n)
		}
	})
	t.Run("FromSpreadsAndStreams", func(t *testing.T) {
		e, _, sends := streamingEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mig5", Stack: "bank", From: "lab-1", Algorithm: "blocking", WholeStack: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, nodeName := range bankNodes {
			key := fmt.Sprintf("bank_holder.%d", i+1)
			got := e.execs[nodeName].Streamed()[node.SetID("mig5", key)]
			target := res.Restore.Targets[key]
			switch {
			case nodeName != "lab-1" && (got != "" || target != nodeName):
				t.Errorf("%s stays on %s: streamed to %q, restored on %s", key, nodeName, got, target)
			case nodeName == "lab-1" && (target == "lab-1" || got != target):
				t.Errorf("%s leaves lab-1: streamed to %q, restored on %s", key, got, target)
			}
		}
		if n := sends.Load(); n != 0 {
			t.Errorf("the restore sent %d sets that were streamed already", n)
		}
	})
}

package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// TestMigrateAbortLeavesEveryContainerRunning: a migration stops its containers only
// once its snapshot committed. When one dump fails, the snapshot aborts and every
// container, also those already dumped, runs on: none was ended by its dump (their
// images are collected with the aborted snapshot, so an ended one would be lost).
func TestMigrateAbortLeavesEveryContainerRunning(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// ctr5's dump fails once the others are dumped.
	failed := make(chan struct{})
	e.execs["lab-2"].FailDump["ctr5"] = errors.New("criu: dump failed: unsupported resource")
	e.execs["lab-2"].Stall["ctr5"] = failed
	go func() {
		defer close(failed)
		for ctx.Err() == nil && (e.execs["lab-1"].Dumps("ctr1") == 0 || e.execs["lab-2"].Dumps("ctr2") == 0 || e.execs["lab-3"].Dumps("ctr3") == 0 || e.execs["lab-1"].Dumps("ctr4") == 0) {
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mab", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
	if !errors.Is(err, api.ErrAborted) {
		t.Fatalf("migrate whose snapshot aborts: %v", err)
	}
	waitFor(t, "every container released", func() bool {
		for _, ex := range e.execs {
			if len(ex.Held()) > 0 {
				return false
			}
		}
		return true
	})
	for n, ex := range e.execs {
		if s := ex.Stopped(); len(s) > 0 {
			t.Errorf("%s: containers ended although the migration's snapshot aborted: %v", n, s)
		}
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas, want 5 (untouched)", r)
	}
}

// TestMigrateStopsContainersAfterCommit: the containers of a migration's snapshot are
// ended (Stop, frozen since their dump) after the commit, and only once swarm was
// told to scale their services down (ended before, a task is replaced by swarm, and
// the replacement can hold the address the restored container needs).
func TestMigrateStopsContainersAfterCommit(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	replicasAtStop := map[string]uint64{}
	for _, ex := range e.execs {
		ex.OnStop = func(c string) {
			mu.Lock()
			replicasAtStop[c] = sw.Replicas("bank_holder")
			mu.Unlock()
		}
	}
	if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mok", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ex := range e.execs {
		n += len(ex.Stopped())
		if h := ex.Held(); len(h) > 0 {
			t.Errorf("%s still holds %v after the migration", ex.Node, h)
		}
	}
	if n != 5 {
		t.Errorf("%d containers ended after the commit, want the 5 of the stack", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for c, r := range replicasAtStop {
		if r != 0 {
			t.Errorf("%s ended while bank_holder was still at %d replicas (swarm replaces it)", c, r)
		}
	}
}

// TestRestoreFailurePutsTheRunningStackBack: a restore checkpoints what runs of the
// stack before it stops it; when the restore then fails, the running containers come
// back on their own nodes from that checkpoint (with their state), not fresh from
// their images; the checkpoint is named in the error.
func TestRestoreFailurePutsTheRunningStackBack(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.snapshot("old"); err != nil {
		t.Fatal(err)
	}
	// Restored on other nodes, bank_holder.1 fails on lab-2.
	e.execs["lab-2"].FailRestore = map[string]error{node.SetID("old", "bank_holder.1"): errors.New("criu: boom")}
	_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "old"})
	if err == nil || !strings.Contains(err.Error(), "put back as it was") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("restore that fails over a running stack: %v", err)
	}
	ms, lerr := e.store.List(ctx, "bank")
	if lerr != nil {
		t.Fatal(lerr)
	}
	var before string
	for _, m := range ms {
		if m.Purpose == "before restore of old" {
			before = m.ID
		}
	}
	if before == "" || !strings.Contains(err.Error(), before) {
		t.Fatalf("no checkpoint of the running stack named in %q (snapshots: %d)", err, len(ms))
	}
	// Every original container runs again on its own node, restored from the checkpoint.
	for i, n := range bankNodes {
		found := false
		for _, c := range e.execs[n].Restored() {
			if strings.HasPrefix(c, "bank_holder-"+string(rune('1'+i))+"-") {
				found = true
			}
		}
		if !found {
			t.Errorf("bank_holder.%d not running again on its node %s (restored there: %v)", i+1, n, e.execs[n].Restored())
		}
	}
	if r := sw.Replicas("bank_holder"); r != 0 {
		t.Errorf("bank_holder at %d replicas: started fresh, want 0 (the originals were put back instead)", r)
	}
}

// TestRestoreHoldsTheStack: while a restore of a snapshot runs, a second restore of it
// and an rm of it are refused (busy, naming the holder), and nothing of theirs runs.
func TestRestoreHoldsTheStack(t *testing.T) {
	e, _ := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.snapshot("held"); err != nil {
		t.Fatal(err)
	}
	// The first restore stalls in its checkpoint of the running stack (a dump).
	stall := make(chan struct{})
	e.execs["lab-1"].Stall["ctr1"] = stall
	first := make(chan error, 1)
	go func() {
		_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "held", DiscardRunning: false})
		first <- err
	}()
	waitFor(t, "first restore checkpointing", func() bool {
		ms, err := e.store.List(ctx, "bank")
		return err == nil && len(ms) == 2 // its checkpoint of the running stack
	})
	_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "held"})
	if !errors.Is(err, api.ErrBusy) || !strings.Contains(err.Error(), "restore-held") {
		t.Errorf("second restore while the first runs: want busy naming the first, got %v", err)
	}
	if _, err := e.remove("held"); !errors.Is(err, api.ErrBusy) {
		t.Errorf("rm while a restore runs: want busy, got %v", err)
	}
	if _, err := e.store.Get(ctx, "held"); err != nil {
		t.Errorf("the snapshot went while it was restored: %v", err)
	}
	close(stall)
	if err := <-first; err != nil {
		t.Fatalf("first restore: %v", err)
	}
	if _, err := e.remove("held"); err != nil {
		t.Errorf("rm once the restore ended: %v", err)
	}
}

// TestMigrateRefusedAfterItsSnapshotLeavesTheStackRunning: a migration whose restore is
// refused by the pre-flight (after its snapshot committed) releases the containers it
// parked: they run on as before, none was ended, and the error says so.
func TestMigrateRefusedAfterItsSnapshotLeavesTheStackRunning(t *testing.T) {
	e, sw := newMigrateEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.execs["lab-3"].PreflightProblems = []string{"bank_holder.1: image swarmckpt/bank:dev is not on node lab-3: load it there"}
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "mref", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true})
	if err == nil || !strings.Contains(err.Error(), "migration refused before anything was stopped") || !strings.Contains(err.Error(), "not on node lab-3") {
		t.Fatalf("migrate refused by the pre-flight: %v", err)
	}
	waitFor(t, "every container released", func() bool {
		for _, ex := range e.execs {
			if len(ex.Held()) > 0 {
				return false
			}
		}
		return true
	})
	for n, ex := range e.execs {
		if s := ex.Stopped(); len(s) > 0 {
			t.Errorf("%s: containers ended by a refused migration: %v", n, s)
		}
	}
	if r := sw.Replicas("bank_holder"); r != 5 || sw.Stops != 0 {
		t.Errorf("bank_holder at %d replicas, %d stops: want 5 and untouched", r, sw.Stops)
	}
}

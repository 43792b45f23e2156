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

// TestMigratePreCopy: migrate --copy pre-copy against the worker fakes. Where every
// dumping node tracks soft-dirty pages, each moving container is pre-dumped on its
// node before the snapshot (the fake runs the policy: 3 rounds) and its pre-dumps
// are sent ahead to its target's worker; its dump takes the
// pre-dumps (Target.PreCopy) and streams to its target, the dumping node keeps its
// set (the rollback's), and the snapshot records the rounds. Where one lacks
// soft-dirty, pre-copy is refused before anything is touched, naming the node and
// saying what to use instead (exit code 2: bad request), and nothing is dumped.
func TestMigratePreCopy(t *testing.T) {
	t.Run("Moved", func(t *testing.T) {
		e, _, sends := streamingEnv(t, func(ex *worker.Fake) { ex.SoftDirty = true })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		events := progress(t, e, "pre3")
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "pre3", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyPreCopy})
		if err != nil {
			t.Fatal(err)
		}
		if res.Copy != api.CopyPreCopy {
			t.Errorf("copy mode %q, want pre-copy", res.Copy)
		}
		for i, nodeName := range bankNodes {
			key := fmt.Sprintf("bank_holder.%d", i+1)
			set := node.SetID("pre3", key)
			wantRounds, wantStream := 3, "lab-3"
			if nodeName == "lab-3" {
				wantRounds, wantStream = 0, "" // not moving: a plain dump
			}
			if got := e.execs[nodeName].PreCopied()[set]; got != wantRounds {
				t.Errorf("%s (on %s): its dump took %d pre-dumps, want %d", key, nodeName, got, wantRounds)
			}
			if got := e.execs[nodeName].PreSent()[set]; got != wantStream {
				t.Errorf("%s (on %s): pre-dumps sent ahead to %q, want %q", key, nodeName, got, wantStream)
			}
			if got := e.execs[nodeName].Streamed()[set]; got != wantStream {
				t.Errorf("%s (on %s): streamed to %q, want %q", key, nodeName, got, wantStream)
			}
			if !e.execs[nodeName].HasSet(set) {
				t.Errorf("%s: the dumping node %s lost its set", key, nodeName)
			}
			c := res.Snapshot.Containers[i]
			if c.Key() != key || c.PreCopy != (wantRounds > 0) || c.PreDumps != wantRounds {
				t.Errorf("%s: recorded pre_copy=%v pre_dumps=%d, want %d rounds", c.Key(), c.PreCopy, c.PreDumps, wantRounds)
			}
		}
		if n := sends.Load(); n != 0 {
			t.Errorf("the restore sent %d sets that were streamed already", n)
		}
		waitFor(t, "the pre-copy progress events", func() bool { return len(events("pre-copy")) == 4 })
		if ev := events("pre-copy"); !strings.Contains(ev[0].Message, "3 pre-dumps") {
			t.Errorf("pre-copy events: %+v, want one per moved container (4) with its rounds", ev)
		}
	})
	t.Run("RefusedWithoutSoftDirty", func(t *testing.T) {
		e, _, _ := streamingEnv(t, func(ex *worker.Fake) { ex.SoftDirty = ex.Node != "lab-2" })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "pre4", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyPreCopy})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(err.Error(), "node lab-2 does not announce the worker feature \"pre-copy\"") ||
			!strings.Contains(err.Error(), "soft-dirty") || !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "--copy direct or --copy streamed") {
			t.Fatalf("pre-copy with lab-2 lacking soft-dirty: %v", err)
		}
		for i, nodeName := range bankNodes {
			if set := node.SetID("pre4", fmt.Sprintf("bank_holder.%d", i+1)); e.execs[nodeName].HasSet(set) {
				t.Errorf("a refused pre-copy dumped %s on %s", set, nodeName)
			}
			if len(e.execs[nodeName].PreCopied()) != 0 {
				t.Errorf("a refused pre-copy pre-dumped on %s", nodeName)
			}
		}
		// The target needs no soft-dirty: lab-3 lacking it does not refuse a move onto it.
		e2, _, _ := streamingEnv(t, func(ex *worker.Fake) { ex.SoftDirty = ex.Node != "lab-3" })
		if _, err := e2.svc.Migrate(ctx, api.MigrateRequest{ID: "pre5", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyPreCopy}); err != nil {
			t.Fatalf("pre-copy onto a target without soft-dirty: %v", err)
		}
	})
	t.Run("PreDumpFails", func(t *testing.T) {
		// bank_holder.4 (ctr4 on lab-1) cannot be pre-dumped: the migration fails
		// before anything is locked, the pre-dumps of the others are dropped, and
		// nothing is dumped or streamed.
		e, _, _ := streamingEnv(t, func(ex *worker.Fake) {
			ex.SoftDirty = true
			if ex.Node == "lab-1" {
				ex.FailDump["ctr4"] = errors.New("criu: boom")
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "pre6", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyPreCopy})
		if err == nil || !strings.Contains(err.Error(), "pre-dumping bank_holder.4") || !strings.Contains(err.Error(), "before anything was locked") || !strings.Contains(err.Error(), "criu: boom") {
			t.Fatalf("pre-copy whose pre-dump fails: %v", err)
		}
		for i, nodeName := range bankNodes {
			set := node.SetID("pre6", fmt.Sprintf("bank_holder.%d", i+1))
			if n := e.execs[nodeName].PreDumpsKept(set); n != 0 {
				t.Errorf("%s: %d pre-dumps kept on %s after the failure", set, n, nodeName)
			}
			if e.execs[nodeName].HasSet(set) || e.execs[nodeName].Streamed()[set] != "" {
				t.Errorf("%s: dumped or streamed after a failed pre-copy", set)
			}
		}
	})
}

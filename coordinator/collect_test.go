package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// bankSets maps each image set of snapshot id to its node (see bankStack).
func bankSets(id string) map[string]string {
	out := map[string]string{}
	for i, n := range []string{"lab-1", "lab-2", "lab-3", "lab-1", "lab-2"} {
		out[node.SetID(id, fmt.Sprintf("bank_holder.%d", i+1))] = n
	}
	return out
}

func (e *env) remove(id string) (*api.RemoveResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return api.Call[api.RemoveResult](ctx, e.client, api.OpRemove, api.RemoveRequest{ID: id})
}

// TestAbortCollectsPartialImages: the image sets an aborted snapshot wrote are dropped
// from their nodes; one a node fails to drop is recorded in the manifest's Leftovers.
func TestAbortCollectsPartialImages(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	e.execs["lab-3"].FailDump["ctr3"] = errors.New("criu: dump failed: unsupported resource")
	// A partial set, as a dump that failed half-way leaves it.
	e.execs["lab-1"].PutSet(node.SetID("snap-a", "bank_holder.1"))
	e.execs["lab-2"].FailDrop = errors.New("disk busy")
	e.execs["lab-2"].PutSet(node.SetID("snap-a", "bank_holder.2"))
	if _, err := e.snapshot("snap-a"); !errors.Is(err, api.ErrAborted) {
		t.Fatalf("err = %v, want aborted", err)
	}
	for set, nodeName := range bankSets("snap-a") {
		if nodeName == "lab-2" {
			continue
		}
		if e.execs[nodeName].HasSet(set) {
			t.Errorf("set %s still on %s after the abort", set, nodeName)
		}
	}
	if !e.execs["lab-2"].HasSet(node.SetID("snap-a", "bank_holder.2")) {
		t.Fatal("the fake dropped a set although told to fail")
	}
	m, err := e.store.Get(context.Background(), "snap-a")
	if err != nil || m.State != store.StateAborted {
		t.Fatalf("manifest %+v %v", m, err)
	}
	if len(m.Leftovers) == 0 || !strings.Contains(strings.Join(m.Leftovers, "\n"), "lab-2 snap-a.bank_holder.2: disk busy") {
		t.Fatalf("leftovers %q do not name the set lab-2 could not drop", m.Leftovers)
	}
	for _, l := range m.Leftovers {
		if !strings.HasPrefix(l, "lab-2 ") {
			t.Errorf("leftover %q on a node that could drop it", l)
		}
	}
}

// TestAbortCollectsTheSetsOfAWorkerThatRestarts: a snapshot aborted because a worker
// was killed mid-dump drops that worker's partial sets too once its supervisor has
// started it again (the drop repeats while the worker is unreachable), leaving nothing
// behind (fault campaign, seed 108).
func TestAbortCollectsTheSetsOfAWorkerThatRestarts(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	e.execs["lab-3"].FailDump["ctr3"] = errors.New("worker at 127.0.0.1:1: connection refused")
	e.execs["lab-2"].PutSet(node.SetID("snap-w", "bank_holder.2"))
	e.execs["lab-2"].FailDrop = node.Mark(errors.New("worker at 127.0.0.1:2: connection refused"), node.ErrWorkerUnreachable)
	e.execs["lab-2"].FailDrops = 3
	if _, err := e.snapshot("snap-w"); !errors.Is(err, api.ErrAborted) {
		t.Fatalf("err = %v, want aborted", err)
	}
	if e.execs["lab-2"].HasSet(node.SetID("snap-w", "bank_holder.2")) {
		t.Fatal("the partial set is still on lab-2: its drop was not repeated once the worker was back")
	}
	m, err := e.store.Get(context.Background(), "snap-w")
	if err != nil || len(m.Leftovers) != 0 {
		t.Fatalf("manifest %+v %v: want no leftovers", m, err)
	}
}

// TestRemoveDropsImages: rm deletes every image set of the snapshot, then its manifest.
func TestRemoveDropsImages(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-r"); err != nil {
		t.Fatal(err)
	}
	for set, node := range bankSets("snap-r") {
		if !e.execs[node].HasSet(set) {
			t.Fatalf("set %s not on %s after the snapshot", set, node)
		}
	}
	res, err := e.remove("snap-r")
	if err != nil {
		t.Fatal(err)
	}
	if res.ImagesRemoved != 5 || len(res.Warnings) != 0 {
		t.Fatalf("result %+v, want 5 sets removed and no warnings", res)
	}
	for set, node := range bankSets("snap-r") {
		if e.execs[node].HasSet(set) {
			t.Errorf("set %s still on %s after rm", set, node)
		}
	}
	if _, err := e.store.Get(context.Background(), "snap-r"); err == nil {
		t.Fatal("manifest still stored after rm")
	}
}

// TestRemoveWithADeadNode: a node that is down does not block rm; its sets are
// reported as left over.
func TestRemoveWithADeadNode(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-d"); err != nil {
		t.Fatal(err)
	}
	e.cancel["lab-3"]()
	res, err := e.remove("snap-d")
	if err != nil {
		t.Fatalf("rm with lab-3 down: %v", err)
	}
	if res.ImagesRemoved != 4 || len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "lab-3 snap-d.bank_holder.3:") {
		t.Fatalf("result %+v, want 4 removed and the lab-3 set reported", res)
	}
	if _, err := e.store.Get(context.Background(), "snap-d"); err == nil {
		t.Fatal("manifest still stored after rm")
	}
	for set, node := range bankSets("snap-d") {
		if got := e.execs[node].HasSet(set); got != (node == "lab-3") {
			t.Errorf("set %s on %s present=%v after rm", set, node, got)
		}
	}
}

// TestRestoreIsAllOrNothing: when one container fails to restore, the ones restored by
// the same call are removed before the error is returned, so a second restore (as
// migrate's rollback does) finds their names free.
func TestRestoreIsAllOrNothing(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-u"); err != nil {
		t.Fatal(err)
	}
	m, err := e.store.Get(context.Background(), "snap-u")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for _, c := range m.Containers {
		targets[c.Key()] = c.Node
	}
	r := &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: e.net.Connect(), AddrOf: func(string) (string, bool) { return "", false }, Timeout: 5 * time.Second}}
	restored := func() []string {
		var out []string
		for _, ex := range e.execs {
			out = append(out, ex.Restored()...)
		}
		return out
	}
	e.execs["lab-3"].FailRestore[node.SetID("snap-u", "bank_holder.3")] = errors.New("criu: restore failed")
	ids, err := r.Restore(context.Background(), m, targets)
	if err == nil || !strings.Contains(err.Error(), "criu: restore failed") {
		t.Fatalf("restore with a failing container: ids %v err %v", ids, err)
	}
	if left := restored(); len(left) != 0 {
		t.Fatalf("containers left running after a failed restore: %v", left)
	}
	delete(e.execs["lab-3"].FailRestore, node.SetID("snap-u", "bank_holder.3"))
	ids, err = r.Restore(context.Background(), m, targets)
	if err != nil || len(ids) != 5 || len(restored()) != 5 {
		t.Fatalf("second restore: ids %v err %v running %v", ids, err, restored())
	}
}

// TestSnapshotAfterRemovingTheLatest: rm of the latest snapshot must not make the next
// snapshot reuse its epoch (the containers' participants would ignore it as stale and
// the snapshot would hang until its deadline; seen on the lab with snapshot, rm in a loop).
func TestSnapshotAfterRemovingTheLatest(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	for i, id := range []string{"snap-e1", "snap-e2", "snap-e3"} {
		res, err := e.snapshot(id)
		if err != nil {
			t.Fatalf("snapshot %d after rm of the previous one: %v", i+1, err)
		}
		if m := res.Snapshot; m.State != store.StateCommitted || m.Epoch != uint64(i+1) {
			t.Fatalf("%s: state %s epoch %d, want committed epoch %d (reason %q)", id, m.State, m.Epoch, i+1, m.Reason)
		}
		if _, err := e.remove(id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoveredAbortCollectsImages: a snapshot a dead coordinator left unfinished is
// aborted by the next one, and its partial image sets are dropped on the nodes.
func TestRecoveredAbortCollectsImages(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	ctx := context.Background()
	m := &store.Manifest{ID: "snap-dead", Stack: "bank", Algorithm: "blocking", State: store.StatePreparing, Epoch: 7,
		Coordinator: "dead", CreatedAt: time.Now()}
	for _, c := range bankStack().Containers {
		m.Containers = append(m.Containers, store.Container{Service: c.Service, Slot: c.Slot, Node: c.Node, ContainerID: c.ContainerID})
	}
	if err := e.store.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.State = store.StateDumping
	if err := e.store.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	for set, node := range bankSets("snap-dead") {
		e.execs[node].PutSet(set) // what the dumps wrote before the coordinator died
	}
	svc, err := coordinator.New(coordinator.Config{Name: "coord-2", Bus: e.net.Connect(), Store: e.store,
		Resolver: stack.Static{}, Algorithms: lookup, TickPeriod: 10 * time.Millisecond, PlanTimeout: 100 * time.Millisecond, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "unfinished snapshot aborted and its sets dropped", func() bool {
		got, err := e.store.Get(ctx, "snap-dead")
		if err != nil || got.State != store.StateAborted {
			return false
		}
		for set, node := range bankSets("snap-dead") {
			if e.execs[node].HasSet(set) {
				return false
			}
		}
		return true
	})
}

// TestDumpEndingAfterItsAbortKeepsNoSet: a dump still running when its snapshot is
// aborted (and its sets collected) drops the set it wrote once it ends: the node's
// agent remembers what the collection dropped.
func TestDumpEndingAfterItsAbortKeepsNoSet(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	errc := make(chan error, 1)
	go func() { _, err := e.snapshot("snap-late"); errc <- err }()
	waitFor(t, "snapshot dumping", func() bool {
		m, err := e.store.Get(context.Background(), "snap-late")
		return err == nil && m.State == store.StateDumping
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := api.Call[api.AbortResult](ctx, e.client, api.OpAbort, api.AbortRequest{ID: "snap-late", Reason: "test"}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if err := <-errc; !errors.Is(err, api.ErrAborted) {
		t.Fatalf("snapshot ended with %v, want aborted", err)
	}
	set := node.SetID("snap-late", "bank_holder.2")
	close(stall) // the late dump ends and writes its set
	waitFor(t, "the late dump's set dumped and dropped", func() bool {
		return e.execs["lab-2"].Dumps("ctr2") == 1 && !e.execs["lab-2"].HasSet(set)
	})
}

// TestRemoveReachesAnAgentReconnecting (fault seed 2906): a node whose agent does not
// answer for a moment (its NATS connection re-established after the coordinator
// restarted, or the agent restarting) while it still counts as live gets the drop once
// it answers again: rm removes its set instead of reporting it left over.
func TestRemoveReachesAnAgentReconnecting(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-rc"); err != nil {
		t.Fatal(err)
	}
	e.cancel["lab-3"]()
	probe := e.net.Connect()
	waitFor(t, "lab-3's agent stopped (no responders on its subjects)", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := probe.Request(ctx, node.DropSubject("lab-3"), []byte(`{"set":"none"}`))
		return errors.Is(err, bus.ErrNoResponders)
	})
	back := make(chan struct{})
	go func() {
		defer close(back)
		time.Sleep(200 * time.Millisecond) // the agent's reconnect delay, not a synchronisation
		e.startAgent("lab-3")
	}()
	res, err := e.remove("snap-rc")
	<-back
	if err != nil {
		t.Fatalf("rm with lab-3's agent reconnecting: %v", err)
	}
	if res.ImagesRemoved != 5 || len(res.Warnings) != 0 {
		t.Fatalf("result %+v, want 5 sets removed and no warnings (the reconnected agent asked again)", res)
	}
	if e.execs["lab-3"].HasSet(node.SetID("snap-rc", "bank_holder.3")) {
		t.Error("lab-3's set is still there")
	}
}

package restore

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeepersShareOneKeeperPerNetwork: concurrent restores on one network share one
// keeper, started once and stopped once by the last release; other networks get their
// own; a failed start is shared too (nobody stops anything); after the last release a
// new restore starts a new keeper.
func TestKeepersShareOneKeeperPerNetwork(t *testing.T) {
	var k keepers
	var starts, stops atomic.Int32
	var stopped sync.Map
	gate := make(chan struct{})
	start := func(id string) func() (string, error) {
		return func() (string, error) {
			starts.Add(1)
			<-gate // the others arrive while the first start runs
			return id, nil
		}
	}
	stop := func(id string) { stops.Add(1); stopped.Store(id, true) }

	const n = 5
	releases := make(chan func(), n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			releases <- k.hold(context.Background(), "bank_net", start("keeper-1"), stop)
		}()
	}
	// Wait until all n holds are counted (the first blocks in start).
	for {
		k.mu.Lock()
		refs := 0
		if kp := k.m["bank_net"]; kp != nil {
			refs = kp.refs
		}
		k.mu.Unlock()
		if refs == n {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	close(releases)
	if starts.Load() != 1 {
		t.Fatalf("%d keeper starts for %d concurrent restores on one network, want 1", starts.Load(), n)
	}
	other := k.hold(context.Background(), "other_net", func() (string, error) { starts.Add(1); return "keeper-2", nil }, stop)
	var rs []func()
	for r := range releases {
		rs = append(rs, r)
	}
	for i, r := range rs {
		r()
		r() // idempotent
		if want := int32(0); i < len(rs)-1 && stops.Load() != want {
			t.Fatalf("keeper stopped after %d of %d releases", i+1, len(rs))
		}
	}
	if _, ok := stopped.Load("keeper-1"); !ok || stops.Load() != 1 {
		t.Fatalf("after the last release: stops %d, keeper-1 stopped %v", stops.Load(), ok)
	}
	other()
	if _, ok := stopped.Load("keeper-2"); !ok || starts.Load() != 2 || stops.Load() != 2 {
		t.Fatalf("other network: starts %d stops %d", starts.Load(), stops.Load())
	}
	// A new restore after the last release starts a new keeper.
	k.hold(context.Background(), "bank_net", func() (string, error) { starts.Add(1); return "keeper-3", nil }, stop)()
	if _, ok := stopped.Load("keeper-3"); !ok || starts.Load() != 3 {
		t.Fatalf("restart: starts %d, keeper-3 stopped %v", starts.Load(), ok)
	}
	// A failed start: nothing to stop.
	k.hold(context.Background(), "bank_net", func() (string, error) { return "", errors.New("no runtime") }, stop)()
	if stops.Load() != 3 {
		t.Fatalf("a keeper that never started was stopped")
	}
	if len(k.m) != 0 {
		t.Fatalf("keepers left registered: %v", k.m)
	}
}

// TestPreparedHolds: Prepare's hold on a container's keepers ends with the container's
// restore, or after its time; a second Prepare of the same container replaces (and
// releases) the first; a timer of a replaced hold does not end the new one.
func TestPreparedHolds(t *testing.T) {
	var k keepers
	var released sync.Map
	rel := func(name string) func() { return func() { released.Store(name, true) } }
	isReleased := func(name string) bool { _, ok := released.Load(name); return ok }

	k.prepared("c1", rel("c1-first"), time.Hour)
	k.prepared("c1", rel("c1-second"), time.Hour)
	if !isReleased("c1-first") || isReleased("c1-second") {
		t.Fatalf("replacing a prepared hold: first released %v, second released %v", isReleased("c1-first"), isReleased("c1-second"))
	}
	k.endPrepared("c1", nil) // the restore of c1 ended
	if !isReleased("c1-second") {
		t.Fatal("the restore's end did not release the prepared hold")
	}
	k.endPrepared("c1", nil) // nothing left: no-op
	k.endPrepared("never", nil)

	k.prepared("c2", rel("c2"), 20*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for !isReleased("c2") {
		if time.Now().After(deadline) {
			t.Fatal("a prepared hold outlived its time")
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.mu.Lock()
	left := len(k.pre)
	k.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d prepared holds left", left)
	}

	// A stale hold's end (its timer firing after a replacement) leaves the new one.
	k.prepared("c3", rel("c3-old"), time.Hour)
	k.mu.Lock()
	old := k.pre["c3"]
	k.mu.Unlock()
	k.prepared("c3", rel("c3-new"), time.Hour)
	k.endPrepared("c3", old)
	if isReleased("c3-new") {
		t.Fatal("a replaced hold's timer released the new hold")
	}
	k.endPrepared("c3", nil)
	if !isReleased("c3-new") {
		t.Fatal("c3-new not released at the restore's end")
	}
}

// TestPreparedHoldEndedBeforeItsKeepersRun: a prepared hold is registered before its
// keepers start (prepare, then set when they run): a release (Unprepare) or restore
// that ends it first has the keepers released as soon as they run, never left held;
// a hold that replaces another still starting ends the other once it holds its own.
func TestPreparedHoldEndedBeforeItsKeepersRun(t *testing.T) {
	var k keepers
	var released sync.Map
	rel := func(name string) func() { return func() { released.Store(name, true) } }
	isReleased := func(name string) bool { _, ok := released.Load(name); return ok }

	h := k.prepare("c1", time.Hour)
	k.endPrepared("c1", nil) // released while its keepers still start
	if isReleased("c1") {
		t.Fatal("released before the keepers were set")
	}
	h.set(rel("c1"))
	if !isReleased("c1") {
		t.Fatal("keepers set after the hold ended were kept")
	}

	first := k.prepare("c2", time.Hour)
	second := k.prepare("c2", time.Hour)
	second.set(rel("c2-second"))
	first.set(rel("c2-first")) // the replaced hold's keepers run last
	if !isReleased("c2-first") || isReleased("c2-second") {
		t.Fatalf("replaced hold released %v (want true), replacing hold released %v (want false)", isReleased("c2-first"), isReleased("c2-second"))
	}
	k.endPrepared("c2", nil)
	if !isReleased("c2-second") {
		t.Fatal("the replacing hold was not released at its end")
	}
	k.mu.Lock()
	left := len(k.pre)
	k.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d prepared holds left", left)
	}
}

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

// TestKeeperReplacedWhileItRuns: a keeper given the address of a container restored on
// its node (fault seed 1234) is replaced: the new one starts while the old still runs
// (the node keeps the network), concurrent replaces of one keeper start one
// replacement, a keeper that is not the node's keeper of the network (an earlier
// worker's) starts nothing, and the last release stops the replacement, not the
// replaced one (which the caller removed).
func TestKeeperReplacedWhileItRuns(t *testing.T) {
	var k keepers
	var stopped []string
	var mu sync.Mutex
	stop := func(id string) { mu.Lock(); stopped = append(stopped, id); mu.Unlock() }
	release := k.hold(context.Background(), "bank_net", func() (string, error) { return "k1", nil }, stop)

	var starts atomic.Int32
	gate := make(chan struct{})
	start := func() (string, error) {
		starts.Add(1)
		<-gate
		return "k2", nil
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- k.replace("bank_net", "k1", start) }()
	}
	for starts.Load() == 0 {
		runtime.Gosched()
	}
	if id := k.m["bank_net"].id; id != "k1" {
		t.Fatalf("keeper %q while its replacement starts, want k1 still running", id)
	}
	close(gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if starts.Load() != 1 {
		t.Fatalf("%d replacements started for one keeper, want 1", starts.Load())
	}
	if err := k.replace("bank_net", "stray", func() (string, error) { t.Error("a stray keeper was replaced"); return "", nil }); err != nil {
		t.Fatal(err)
	}
	if err := k.replace("other_net", "k1", func() (string, error) { t.Error("a network without keeper got one"); return "", nil }); err != nil {
		t.Fatal(err)
	}
	// A failed replacement leaves nothing to stop.
	hold2 := k.hold(context.Background(), "net2", func() (string, error) { return "n1", nil }, stop)
	if err := k.replace("net2", "n1", func() (string, error) { return "", errors.New("no") }); err == nil {
		t.Error("a failed replacement returned no error")
	}
	release()
	hold2()
	mu.Lock()
	defer mu.Unlock()
	if len(stopped) != 1 || stopped[0] != "k2" {
		t.Fatalf("stopped %v after the last release, want [k2] (the replacement; k1 was the caller's to remove, n1's replacement failed)", stopped)
	}
}

// TestWantedAddresses: the addresses of the restores running on a node count until
// each restore ends (two restores of one address count twice); a keeper given one
// is not kept.
func TestWantedAddresses(t *testing.T) {
	var w wanted
	done1 := w.add(map[string]string{"bank_net": "10.240.4.4", "other": ""})
	done2 := w.add(map[string]string{"bank_net": "10.240.4.4"})
	if !w.has("bank_net", "10.240.4.4") || w.has("bank_net", "10.240.4.5") || w.has("other", "") || w.has("other_net", "10.240.4.4") {
		t.Fatal("wanted: wrong answer while two restores take 10.240.4.4 on bank_net")
	}
	done1()
	done1() // idempotent
	if !w.has("bank_net", "10.240.4.4") {
		t.Fatal("10.240.4.4 not wanted any more while a second restore still takes it")
	}
	done2()
	if w.has("bank_net", "10.240.4.4") {
		t.Fatal("10.240.4.4 still wanted after both restores ended")
	}
}

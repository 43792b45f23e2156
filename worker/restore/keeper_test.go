package restore

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
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

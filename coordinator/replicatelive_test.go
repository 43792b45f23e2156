package coordinator_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// A copy whose receiving node is lost while the sender streams (the sender never
// answers) ends as soon as the receiver has no live worker, not after the copy
// timeout (5 min): the snapshot, committed, returns naming the lost node, and its
// stack's lock is free for a node-loss restore.
func TestReplicaCopyEndsWhenItsNodeIsLost(t *testing.T) {
	e := newReplicaEnv(t)
	blocked := make(chan string, 16)
	unblock := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(unblock) }) })
	for _, ex := range e.execs {
		ex.SendTo = func(set, to string) (bool, error) {
			if to == "lab-3" { // every copy to lab-3 hangs, as a stream to a dead node
				blocked <- set
				<-unblock
				return false, nil
			}
			e.execs[to].PutSet(set)
			return false, nil
		}
	}
	type result struct {
		state string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		res, err := snapshotReplicas(e, "rep", 2)
		r := result{err: err}
		if res != nil && res.Snapshot != nil {
			r.state = string(res.Snapshot.State)
		}
		done <- r
	}()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("no copy to lab-3 started")
	}
	lost := time.Now()
	e.cancel["lab-3"]() // lab-3's agent stops: its heartbeats end
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the snapshot still waits for a copy to a lost node 15 s after it was lost")
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "node lab-3 has no live worker any more") {
		t.Fatalf("snapshot with a copy to a lost node: %v; want the copy failed naming lab-3", r.err)
	}
	if m, err := e.store.Get(t.Context(), "rep"); err != nil || m.State != store.StateCommitted {
		t.Fatalf("snapshot rep: %v %v; want committed (its originals are whole)", m, err)
	}
	t.Logf("copy ended %s after lab-3 was lost", time.Since(lost).Round(10*time.Millisecond))
}

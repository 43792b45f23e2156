package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Joiner opens one more participant of the same fresh election, with its own
// connection; kill makes the participant named name die abruptly (no resign: its
// lease lapses). TTL is the election's lease.
type Joiner struct {
	Join func(t *testing.T) store.Elector
	Kill func(name string)
	TTL  time.Duration
}

// ElectionFactory returns a fresh election.
type ElectionFactory func(t *testing.T) Joiner

// RunElection runs the elector conformance suite.
func RunElection(t *testing.T, f ElectionFactory) {
	t.Run("StandbyTakesOver", func(t *testing.T) { testTakeover(t, f) })
	t.Run("ResignAndCancel", func(t *testing.T) { testResign(t, f) })
}

type campaign struct {
	l   store.Leadership
	err error
}

func start(ctx context.Context, e store.Elector, name string) <-chan campaign {
	ch := make(chan campaign, 1)
	go func() {
		l, err := e.Campaign(ctx, store.Candidate{Name: name, Host: "h", PID: 1, Started: time.Now()})
		ch <- campaign{l, err}
	}()
	return ch
}

func waitCandidates(t *testing.T, e store.Elector, want ...string) []store.Candidate {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := e.Candidates(ctx(t))
		if err == nil && len(cs) == len(want) {
			ok := true
			for i := range cs {
				ok = ok && cs[i].Name == want[i] && cs[i].Leader == (i == 0)
			}
			if ok {
				return cs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("candidates = %+v (%v), want %v with the first leading", cs, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The first candidate leads at once; the second waits as a standby, listed after it;
// when the leader dies the standby leads within the lease TTL (plus slack) and the
// dead leader's Lost is closed.
func testTakeover(t *testing.T, f ElectionFactory) {
	j := f(t)
	a, b := j.Join(t), j.Join(t)
	ca := <-start(ctx(t), a, "a")
	if ca.err != nil {
		t.Fatalf("first candidate: %v", ca.err)
	}
	cb := start(ctx(t), b, "b")
	cs := waitCandidates(t, b, "a", "b")
	if cs[0].LeaderSince.IsZero() || !cs[1].LeaderSince.IsZero() {
		t.Fatalf("LeaderSince = %v / %v, want set on the leader only", cs[0].LeaderSince, cs[1].LeaderSince)
	}
	select {
	case r := <-cb:
		t.Fatalf("standby won while the leader lives: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	killed := time.Now()
	j.Kill("a")
	select {
	case r := <-cb:
		if r.err != nil {
			t.Fatalf("standby: %v", r.err)
		}
		if d := time.Since(killed); d > j.TTL+3*time.Second {
			t.Fatalf("standby took over %v after the leader died, want within TTL %v + 3s", d, j.TTL)
		}
	case <-time.After(j.TTL + 5*time.Second):
		t.Fatalf("standby did not take over within %v of the leader's death", j.TTL+5*time.Second)
	}
	select {
	case <-ca.l.Lost():
	case <-time.After(j.TTL + 5*time.Second):
		t.Fatal("the dead leader's Lost was not closed")
	}
	waitCandidates(t, b, "b")
}

// Resign hands the leadership to the next candidate at once; a campaign whose ctx
// ends returns its error and leaves the list.
func testResign(t *testing.T, f ElectionFactory) {
	j := f(t)
	a, b, c := j.Join(t), j.Join(t), j.Join(t)
	ca := <-start(ctx(t), a, "a")
	if ca.err != nil {
		t.Fatal(ca.err)
	}
	cb := start(ctx(t), b, "b")
	waitCandidates(t, a, "a", "b")
	cctx, cancel := context.WithCancel(ctx(t))
	cc := start(cctx, c, "c")
	waitCandidates(t, a, "a", "b", "c")
	cancel()
	if r := <-cc; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled campaign = %+v, want context.Canceled", r)
	}
	waitCandidates(t, a, "a", "b")
	t0 := time.Now()
	if err := ca.l.Resign(ctx(t)); err != nil {
		t.Fatal(err)
	}
	r := <-cb
	if r.err != nil {
		t.Fatal(r.err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("next candidate led %v after the resign, want at once", d)
	}
	waitCandidates(t, a, "b")
}

// ListLocks names every held stack lock with its owner, sorted by stack.
func testListLocks(t *testing.T, f Factory) {
	s, _ := open(t, f)
	if ls, err := s.ListLocks(ctx(t)); err != nil || len(ls) != 0 {
		t.Fatalf("ListLocks of an empty store = %v, %v", ls, err)
	}
	l, err := s.LockStack(ctx(t), "echo", "c1/snap-e", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockStack(ctx(t), "bank", "c1/snap-b", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextEpoch(ctx(t), "bank", 1); err != nil { // other keys of the stack are no locks
		t.Fatal(err)
	}
	ls, err := s.ListLocks(ctx(t))
	if err != nil || len(ls) != 2 || ls[0] != (store.LockInfo{Stack: "bank", Owner: "c1/snap-b"}) || ls[1] != (store.LockInfo{Stack: "echo", Owner: "c1/snap-e"}) {
		t.Fatalf("ListLocks = %+v, %v", ls, err)
	}
	if err := l.Unlock(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.ListLocks(ctx(t)); err != nil || len(ls) != 1 || ls[0].Stack != "bank" {
		t.Fatalf("ListLocks after unlock = %+v, %v", ls, err)
	}
}

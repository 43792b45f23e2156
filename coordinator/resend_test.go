package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// deadLeader is a leader that receives requests and dies before answering any: it
// answers the status (so the CLI knows who leads) and swallows snapshot requests.
type deadLeader struct {
	tr       *bus.Memory
	received chan api.SnapshotRequest
}

func newDeadLeader(t *testing.T, net *bus.Network) *deadLeader {
	d := &deadLeader{tr: net.Connect(), received: make(chan api.SnapshotRequest, 4)}
	gone := make(chan struct{})
	t.Cleanup(func() { close(gone) })
	started := time.Now().Add(-time.Hour)
	if _, err := api.Serve(d.tr, api.OpStatus, func(context.Context, *api.StatusRequest) (*api.StatusResult, error) {
		return &api.StatusResult{Coordinator: "c0", Started: started}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Serve(d.tr, api.OpSnapshot, func(_ context.Context, req *api.SnapshotRequest) (*api.SnapshotResult, error) {
		d.received <- *req
		<-gone // dies before answering (its process ends; no answer ever comes)
		return nil, errors.New("unreachable")
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// resends records the client's resends.
type resends struct {
	mu  sync.Mutex
	why []string
}

func (r *resends) add(_, why string) { r.mu.Lock(); r.why = append(r.why, why); r.mu.Unlock() }
func (r *resends) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.why...)
}

// TestSnapshotRequestResentToTheNewLeader: the leader a snapshot request was delivered
// to dies at that instant, before it wrote anything; a CLI client with Failover sees
// another coordinator lead, sends the request again (same id and request id) and gets
// the new leader's answer: the snapshot committed, taken once.
func TestSnapshotRequestResentToTheNewLeader(t *testing.T) {
	net := bus.NewNetwork()
	dead := newDeadLeader(t, net)
	var rs resends
	client := api.Client{T: net.Connect(), Failover: true, OnResend: rs.add}
	type answer struct {
		res *api.SnapshotResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := api.Call[api.SnapshotResult](ctx, client, api.OpSnapshot, api.SnapshotRequest{ID: "snap-resent", Stack: "bank", RequestID: "r-1"})
		got <- answer{res, err}
	}()
	select {
	case req := <-dead.received:
		if req.RequestID != "r-1" {
			t.Fatalf("the request carries request id %q, want r-1", req.RequestID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the leader")
	}
	dead.tr.Close() // killed: its subscriptions are gone with it
	e := newEnvOn(t, net, nil, "lab-1", "lab-2", "lab-3")
	var a answer
	select {
	case a = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no answer 20 s after the new leader started: the request was not sent again")
	}
	if a.err != nil || a.res == nil || a.res.Snapshot == nil || a.res.Snapshot.State != store.StateCommitted || a.res.Snapshot.RequestID != "r-1" {
		t.Fatalf("answer %+v, %v; want snap-resent committed, with its request id", a.res, a.err)
	}
	if why := rs.list(); len(why) != 1 || !strings.Contains(why[0], "c0") || !strings.Contains(why[0], "coord-test") {
		t.Errorf("resends %q, want one naming the dead leader c0 and the new one", why)
	}
	hs, err := e.store.Headers(context.Background(), "bank")
	if err != nil || len(hs) != 1 {
		t.Fatalf("snapshots of bank: %d (%v), want the one taken once", len(hs), err)
	}
	// The same request once more (its answer lost again): the outcome, not a second
	// snapshot nor a duplicate-id refusal. Another request with that id is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := api.Call[api.SnapshotResult](ctx, client, api.OpSnapshot, api.SnapshotRequest{ID: "snap-resent", Stack: "bank", RequestID: "r-1"})
	if err != nil || res.Snapshot.State != store.StateCommitted {
		t.Fatalf("the same request again: %+v, %v; want the committed outcome", res, err)
	}
	if _, err := api.Call[api.SnapshotResult](ctx, client, api.OpSnapshot, api.SnapshotRequest{ID: "snap-resent", Stack: "bank", RequestID: "r-2"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("another request with that id: %v, want refused (pick another id)", err)
	}
}

// TestSnapshotResentAfterTheLeaderDiedMidSnapshot: the leader dies while the snapshot
// dumps (one dump stuck); the client sends the request again to the standby that leads
// next, which recognises it and answers with its outcome (aborted by its recovery,
// every container released) instead of leaving the CLI waiting for its timeout.
func TestSnapshotResentAfterTheLeaderDiedMidSnapshot(t *testing.T) {
	e := newHAEnv(t, "lab-1", "lab-2", "lab-3")
	e.start("c1")
	e.waitLeader("c1", 10*time.Second)
	e.start("c2")
	stall := make(chan struct{})
	e.execs["lab-2"].Stall["ctr2"] = stall
	var rs resends
	client := api.Client{T: e.net.Connect(), Failover: true, OnResend: rs.add}
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := api.Call[api.SnapshotResult](ctx, client, api.OpSnapshot, api.SnapshotRequest{ID: "snap-mid", Stack: "bank", RequestID: "r-mid"})
		errc <- err
	}()
	waitFor(t, "snapshot dumping", func() bool {
		m := e.manifest("snap-mid")
		return m != nil && m.State == store.StateDumping
	})
	killed := time.Now()
	e.kill("c1")
	go func() {
		waitForLong(t, 30*time.Second, "the dead leader's snapshot aborted", func() bool {
			m := e.manifest("snap-mid")
			return m != nil && m.State == store.StateAborted
		})
		close(stall)
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, api.ErrAborted) || !strings.Contains(err.Error(), "coordinator restarted") {
			t.Fatalf("the resent request ended with %v, want aborted by the recovery of c1's snapshot", err)
		}
		t.Logf("answered %v after the kill: %v", time.Since(killed).Round(10*time.Millisecond), err)
	case <-time.After(45 * time.Second):
		t.Fatal("no answer 45 s after the leader died")
	}
	if why := rs.list(); len(why) != 1 || !strings.Contains(why[0], "c2") {
		t.Errorf("resends %q, want one to c2", why)
	}
	waitForLong(t, 20*time.Second, "every container released", func() bool { return len(e.held()) == 0 })
}

package api_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// leaderProc is one coordinator process on the network: it answers the status as
// name, and counts the requests of op it receives; it answers none of them when mute
// (it "dies" with them).
type leaderProc struct {
	tr   *bus.Memory
	seen atomic.Int32
}

func startLeader(t *testing.T, net *bus.Network, name, op string, mute bool) *leaderProc {
	t.Helper()
	p := &leaderProc{tr: net.Connect()}
	started := time.Now()
	gone := make(chan struct{})
	t.Cleanup(func() { close(gone); p.tr.Close() })
	if _, err := api.Serve(p.tr, api.OpStatus, func(context.Context, *api.StatusRequest) (*api.StatusResult, error) {
		return &api.StatusResult{Coordinator: name, Started: started}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Serve(p.tr, op, func(context.Context, *struct{}) (*api.RemoveResult, error) {
		p.seen.Add(1)
		if mute {
			<-gone
			return nil, errors.New("dead")
		}
		return &api.RemoveResult{ID: "x"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Failover resends only what is safe to send twice: a read goes again to the new
// leader; an rm (not Resendable) is never sent twice, it waits for its own answer.
func TestFailoverResendsOnlyResendableRequests(t *testing.T) {
	for _, tc := range []struct {
		op     string
		req    any
		resend bool
	}{
		{api.OpList, api.ListRequest{}, true},
		{api.OpSnapshot, api.SnapshotRequest{ID: "s", Stack: "bank", RequestID: "r"}, true},
		{api.OpSnapshot, api.SnapshotRequest{ID: "s", Stack: "bank"}, false}, // no request id
		{api.OpRemove, api.RemoveRequest{ID: "s"}, false},
	} {
		net := bus.NewNetwork()
		dead := startLeader(t, net, "c1", tc.op, true)
		var resent atomic.Int32
		cl := api.Client{T: net.Connect(), Failover: true, OnResend: func(string, string) { resent.Add(1) }}
		done := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		go func() { _, err := api.Call[api.RemoveResult](ctx, cl, tc.op, tc.req); done <- err }()
		for dead.seen.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		dead.tr.Close() // died with the request
		next := startLeader(t, net, "c2", tc.op, false)
		err := <-done
		cancel()
		if tc.resend && (err != nil || next.seen.Load() != 1 || resent.Load() != 1) {
			t.Errorf("%s %+v: %v, new leader got %d, resent %d; want it sent again once and answered", tc.op, tc.req, err, next.seen.Load(), resent.Load())
		}
		if !tc.resend && (err == nil || next.seen.Load() != 0 || resent.Load() != 0) {
			t.Errorf("%s %+v: %v, new leader got %d, resent %d; want it never sent again (waits for its own answer until its deadline)", tc.op, tc.req, err, next.seen.Load(), resent.Load())
		}
	}
}

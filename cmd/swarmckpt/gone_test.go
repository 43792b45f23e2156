package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// fakeCoordinator answers status with a start time the test changes (a restart) and
// inspect with a manifest the test sets.
type fakeCoordinator struct {
	mu      sync.Mutex
	started time.Time
	m       *store.Manifest
}

func (f *fakeCoordinator) serve(t *testing.T, tr bus.Transport) {
	t.Helper()
	if _, err := api.Serve(tr, api.OpStatus, func(ctx context.Context, req *api.StatusRequest) (*api.StatusResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return &api.StatusResult{Coordinator: "c", Started: f.started}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Serve(tr, api.OpInspect, func(ctx context.Context, req *api.InspectRequest) (*api.InspectResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.m == nil || f.m.ID != req.ID {
			return nil, api.Errorf(api.CodeNotFound, "no snapshot %s", req.ID)
		}
		m := *f.m
		return &api.InspectResult{Snapshot: &m}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCoordinatorGoneSeesARestart: a coordinator restarted during a request (it answers
// again at once, as a supervised one does, but as a new process) ends the wait with the
// reason; a restarted coordinator's decision on the snapshot is then read back.
func TestCoordinatorGoneSeesARestart(t *testing.T) {
	net := bus.NewNetwork()
	f := &fakeCoordinator{started: time.Now().Add(-time.Hour)}
	f.serve(t, net.Connect())
	cl := api.Client{T: net.Connect()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := coordinatorGone(ctx, cl, 6*time.Second, true)
	select {
	case why := <-gone:
		t.Fatalf("gone before any restart: %s", why)
	case <-time.After(1500 * time.Millisecond):
	}
	f.mu.Lock()
	f.started = time.Now()
	f.mu.Unlock()
	select {
	case why := <-gone:
		if !strings.Contains(why, "restarted") {
			t.Fatalf("reason %q does not say the coordinator restarted", why)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a restarted coordinator was not noticed within 5 s")
	}

	if m := decided(ctx, cl, "s1", 600*time.Millisecond); m != nil {
		t.Fatalf("decided returned %+v for an unknown snapshot", m)
	}
	f.mu.Lock()
	f.m = &store.Manifest{ID: "s1", State: store.StateAborted, Reason: "coordinator restarted before the snapshot was decided"}
	f.mu.Unlock()
	if m := decided(ctx, cl, "s1", 5*time.Second); m == nil || m.State != store.StateAborted {
		t.Fatalf("decided: %+v, want the aborted manifest", m)
	}
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// A coordinator restarted during a snapshot: the CLI reports the new coordinator's
// decision and every container still held, where and until when (asked with OpHeld).
func TestSnapshotReportsHeldAfterACoordinatorRestart(t *testing.T) {
	net := bus.NewNetwork()
	f := &fakeCoordinator{started: time.Now().Add(-time.Hour)}
	tr := net.Connect()
	f.serve(t, tr)
	stop := make(chan struct{})
	defer close(stop)
	if _, err := api.Serve(tr, api.OpSnapshot, func(ctx context.Context, req *api.SnapshotRequest) (*api.SnapshotResult, error) {
		f.mu.Lock()
		f.m = &store.Manifest{ID: req.ID, Stack: req.Stack, State: store.StateAborted, Reason: "coordinator restarted before the snapshot was decided"}
		f.started = time.Now().Add(time.Second) // the process that had the request "dies"
		f.mu.Unlock()
		<-stop // its answer never comes
		return nil, context.Canceled
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Serve(tr, api.OpHeld, func(ctx context.Context, req *api.HeldRequest) (*api.HeldResult, error) {
		return &api.HeldResult{Held: []string{"web.1 on lab-2: frozen and network-locked until 2026-12-06T04:00:00Z at the latest (its hold's deadline)"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, transport: func() bus.Transport { return net.Connect() }}
	err := runSnapshot(context.Background(), c, []string{"web", "--id", "web-1"})
	if err == nil || !strings.Contains(err.Error(), "aborted") || !strings.Contains(err.Error(), "still held:\n  - web.1 on lab-2: frozen and network-locked until") {
		t.Fatalf("snapshot: %v, want the abort and web.1 named as still held\n%s", err, out.String())
	}
}

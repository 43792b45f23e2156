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

// A coordinator restarted during a snapshot (it had the request, its answer never
// comes): the CLI sends the same request (same id and request id) to the process that
// leads now, which answers with the snapshot's outcome: the abort and every container
// still held, where and until when.
func TestSnapshotResentAfterACoordinatorRestart(t *testing.T) {
	net := bus.NewNetwork()
	f := &fakeCoordinator{started: time.Now().Add(-time.Hour)}
	tr := net.Connect()
	f.serve(t, tr)
	stop := make(chan struct{})
	defer close(stop)
	var reqs []api.SnapshotRequest
	if _, err := api.Serve(tr, api.OpSnapshot, func(ctx context.Context, req *api.SnapshotRequest) (*api.SnapshotResult, error) {
		f.mu.Lock()
		reqs = append(reqs, *req)
		first := len(reqs) == 1
		m := &store.Manifest{ID: req.ID, Stack: req.Stack, State: store.StateAborted, Reason: "coordinator restarted before the snapshot was decided", RequestID: req.RequestID}
		if first {
			f.started = time.Now().Add(time.Second) // the process that had the request "dies"
		}
		f.mu.Unlock()
		if first {
			<-stop // its answer never comes
			return nil, context.Canceled
		}
		// The new process recognises the request: the outcome of what the dead one began.
		return &api.SnapshotResult{Snapshot: m}, api.Errorf(api.CodeAborted, "snapshot %s aborted: %s; still held after 5s:\n  - web.1 on lab-2: frozen and network-locked until 2026-12-06T04:00:00Z at the latest (its hold's deadline)", m.ID, m.Reason)
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, transport: func() bus.Transport { return net.Connect() }}
	err := runSnapshot(context.Background(), c, []string{"web", "--id", "web-1"})
	if err == nil || !strings.Contains(err.Error(), "aborted") || !strings.Contains(err.Error(), "still held after 5s:\n  - web.1 on lab-2: frozen and network-locked until") {
		t.Fatalf("snapshot: %v, want the abort and web.1 named as still held\n%s", err, out.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(reqs) != 2 || reqs[0].RequestID == "" || reqs[1].RequestID != reqs[0].RequestID || reqs[1].ID != reqs[0].ID {
		t.Fatalf("requests %+v, want the same one (with a request id) twice", reqs)
	}
	if !strings.Contains(out.String(), "sending the snapshot request again") {
		t.Errorf("output does not say the request was sent again:\n%s", out.String())
	}
}

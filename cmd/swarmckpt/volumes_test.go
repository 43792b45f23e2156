package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// snapshot --carry-volumes asks the coordinator to carry them, and the summary shows
// each carried volume with its size.
func TestSnapshotCarryVolumes(t *testing.T) {
	net := bus.NewNetwork()
	tr := net.Connect()
	got := make(chan api.SnapshotRequest, 1)
	if _, err := api.Serve(tr, api.OpSnapshot, func(ctx context.Context, req *api.SnapshotRequest) (*api.SnapshotResult, error) {
		got <- *req
		return &api.SnapshotResult{Snapshot: &store.Manifest{ID: req.ID, Stack: req.Stack, State: store.StateCommitted, CarryVolumes: req.CarryVolumes,
			Containers: []store.Container{{Service: "db", Slot: 1, Node: "lab-1", Images: &store.ImageSet{Files: []store.File{
				{Name: "pages-1.img", Size: 4096}, {Name: "volume-db_data.tar", Size: 3 << 20}}}}}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Serve(tr, api.OpStatus, func(ctx context.Context, req *api.StatusRequest) (*api.StatusResult, error) {
		return &api.StatusResult{Coordinator: "c"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, transport: func() bus.Transport { return net.Connect() }}
	if err := runSnapshot(context.Background(), c, []string{"db", "--carry-volumes"}); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out.String())
	}
	if req := <-got; !req.CarryVolumes || req.Timeout != 0 {
		t.Fatalf("request %+v: want CarryVolumes and no timeout (the coordinator's budget)", req)
	}
	if !strings.Contains(out.String(), "volume db_data of db.1 carried: 3.0 MiB") {
		t.Fatalf("summary does not show the carried volume:\n%s", out.String())
	}
}

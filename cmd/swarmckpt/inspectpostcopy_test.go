package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// TestInspectShowsPostCopyPages: inspect of a post-copy migration's snapshot says when
// each container's last page arrived, and names a container whose pages were lost
// (what a user reads after a recovery that found the source failed) with what to do.
func TestInspectShowsPostCopyPages(t *testing.T) {
	net := bus.NewNetwork()
	f := &fakeCoordinator{started: time.Now(), m: &store.Manifest{ID: "echo-1", Stack: "echo", State: store.StateCommitted, Partial: true,
		Containers: []store.Container{
			{Service: "echo_server", Slot: 1, Node: "lab-1", ContainerID: "c1", PostCopy: true, PagesArrived: time.Now()},
			{Service: "echo_client", Slot: 1, Node: "lab-1", ContainerID: "c2", PostCopy: true, PagesLost: "node lab-1: no live agent"},
			{Service: "db", Slot: 1, Node: "lab-2", ContainerID: "c3"},
		}}}
	f.serve(t, net.Connect())
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, transport: func() bus.Transport { return net.Connect() }}
	if err := runInspect(context.Background(), c, []string{"echo-1"}); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"post-copy echo_server.1: its last page arrived from lab-1 at ",
		"post-copy echo_client.1: PAGES LOST: its source on lab-1 failed before every page of its memory arrived (node lab-1: no live agent)",
		"restart it (or restore an earlier snapshot)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "post-copy db.1") {
		t.Errorf("inspect says post-copy for a container that was not:\n%s", got)
	}
}

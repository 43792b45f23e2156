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

// TestInspectShowsDirectPages: inspect of a direct migration's snapshot says which
// sets still wait for their page digests (the target hashes the pages after the
// restore) and names a set whose pages can never be verified, with what to do.
func TestInspectShowsDirectPages(t *testing.T) {
	net := bus.NewNetwork()
	set := func(pending bool, unverified string) *store.ImageSet {
		return &store.ImageSet{Node: "lab-2", Dir: "/sets/x", Durable: true, PagesHashedBy: "lab-2", PagesPending: pending, PagesUnverified: unverified,
			Files: []store.File{{Name: "images/pages-1.img", Size: 10}}}
	}
	f := &fakeCoordinator{started: time.Now(), m: &store.Manifest{ID: "echo-1", Stack: "echo", State: store.StateCommitted, Partial: true,
		Containers: []store.Container{
			{Service: "echo_server", Slot: 1, Node: "lab-1", ContainerID: "c1", Direct: true, StreamedTo: "lab-2", Images: set(true, "")},
			{Service: "echo_client", Slot: 1, Node: "lab-1", ContainerID: "c2", Direct: true, StreamedTo: "lab-2", Images: set(true, "node lab-2: its worker ended before the hash")},
			{Service: "db", Slot: 1, Node: "lab-2", ContainerID: "c3", Images: set(false, "")},
		}}}
	f.serve(t, net.Connect())
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, transport: func() bus.Transport { return net.Connect() }}
	if err := runInspect(context.Background(), c, []string{"echo-1"}); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"direct echo_server.1: page digests pending: lab-2 hashes the memory pages it received after the restore",
		"direct echo_client.1: PAGES UNVERIFIED",
		"(node lab-2: its worker ended before the hash)",
		"restore another snapshot",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "direct db.1") || strings.Contains(got, "echo_client.1: page digests pending") {
		t.Errorf("inspect says too much:\n%s", got)
	}
}

package worker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// listingRestorer is a fake restorer whose node has restored containers of two stacks.
type listingRestorer struct {
	*restore.Fake
	asked []string
}

func (l *listingRestorer) Standalone(_ context.Context, stack string) ([]restore.Standalone, error) {
	l.asked = append(l.asked, stack)
	all := []restore.Standalone{
		{ID: "c1", Name: "bank_holder-1-s2", Service: "bank_holder", Stack: "bank", Running: true,
			Networks: []restore.StandaloneNet{{Name: "bank_net", IPv4: "10.240.4.2", Aliases: []string{"holder"}}}},
		{ID: "c2", Name: "echo_client-1-x", Service: "echo_client", Stack: "echo", Running: true},
		{ID: "c3", Name: "bank_holder-2-s2", Service: "bank_holder", Running: false, State: "exited"}, // no stack label
	}
	var out []restore.Standalone
	for _, s := range all {
		if s.InStack(stack) {
			out = append(out, s)
		}
	}
	return out, nil
}

// The worker lists a stack's restored containers through its HTTP API, as the node
// agent asks for them; a restorer that cannot list says so; the stack is required.
func TestStandaloneListThroughTheAPI(t *testing.T) {
	dir := t.TempDir()
	lr := &listingRestorer{Fake: restore.NewFake(filepath.Join(dir, "consumed"), "img")}
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot = filepath.Join(dir, "data")
	cfg.JournalDir = filepath.Join(dir, "journal")
	cfg.WatchdogArgv = watchdogArgv(t)
	w, err := worker.New(cfg, worker.Parts{Inspector: container.NewFake(), Locker: netlock.NewFake(), Freezer: freezer.NewFake(),
		Dumper: dump.Fake{}, Restorer: lr, Features: migrate.StaticFeatures{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	cl := &worker.Client{Addr: w.Addr()}
	got, err := cl.Standalone(context.Background(), "bank")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID+"/"+s.Name+"/"+s.State)
	}
	if strings.Join(ids, " ") != "c1/bank_holder-1-s2/ c3/bank_holder-2-s2/exited" || got[0].Networks[0].IPv4 != "10.240.4.2" || !got[0].Running {
		t.Fatalf("listed %v (%+v), want bank's c1 (running, with its address) and c3 (by its service name)", ids, got)
	}
	if none, err := cl.Standalone(context.Background(), "other"); err != nil || len(none) != 0 {
		t.Fatalf("stack without restored containers: %v %v, want an empty list", none, err)
	}
	if _, err := cl.Standalone(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "no stack") {
		t.Fatalf("no stack: %v", err)
	}

	n := newFakeNode(t, "n2") // restore.Fake cannot list
	if _, err := (&worker.Client{Addr: n.w.Addr()}).Standalone(context.Background(), "bank"); err == nil || !strings.Contains(err.Error(), "cannot list") {
		t.Fatalf("restorer without a list: %v", err)
	}
}

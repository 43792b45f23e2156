package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// slowCoordinator answers migrate and restore only once released (what a coordinator
// does when the operation's containers are released, or it finished), and records the
// aborts it gets.
type slowCoordinator struct {
	release  chan struct{}
	answered chan time.Time
	mu       sync.Mutex
	aborts   []string
	running  bool // the migration's snapshot is still running (abortable)
}

func (f *slowCoordinator) serve(t *testing.T, tr bus.Transport) {
	t.Helper()
	started := time.Now()
	must := func(_ bus.Subscription, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(api.Serve(tr, api.OpStatus, func(ctx context.Context, req *api.StatusRequest) (*api.StatusResult, error) {
		return &api.StatusResult{Coordinator: "c", Started: started}, nil
	}))
	must(api.Serve(tr, api.OpAbort, func(ctx context.Context, req *api.AbortRequest) (*api.AbortResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.aborts = append(f.aborts, req.ID)
		if !f.running {
			return nil, api.Errorf(api.CodeNotFound, "snapshot %s is not running on this coordinator", req.ID)
		}
		return &api.AbortResult{}, nil
	}))
	must(api.Serve(tr, api.OpMigrate, func(ctx context.Context, req *api.MigrateRequest) (*api.MigrateResult, error) {
		<-f.release
		f.answered <- time.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.running {
			return &api.MigrateResult{Snapshot: &store.Manifest{ID: req.ID, State: store.StateAborted}},
				api.Errorf(api.CodeAborted, "snapshot %s aborted: interrupted by the user (Ctrl-C); still held after 5s:\n  - web.1 on lab-2: frozen until 2026-12-06T04:00:00Z at the latest (its hold's deadline)", req.ID)
		}
		return &api.MigrateResult{Snapshot: &store.Manifest{ID: req.ID, State: store.StateCommitted}, Restore: &api.RestoreResult{}}, nil
	}))
	must(api.Serve(tr, api.OpRestore, func(ctx context.Context, req *api.RestoreRequest) (*api.RestoreResult, error) {
		<-f.release
		f.answered <- time.Now()
		return &api.RestoreResult{ID: req.ID, Targets: map[string]string{"web.1": "lab-2"}}, nil
	}))
}

// interrupt runs a user command against f, interrupts it (Ctrl-C) after 200 ms, lets
// f answer 300 ms later and returns the command's output, when it returned, when f
// answered, and the command's error.
func interrupt(t *testing.T, f *slowCoordinator, run func(context.Context, *cli, []string) error, args ...string) (out string, returned, answered time.Time, err error) {
	t.Helper()
	net := bus.NewNetwork()
	f.release, f.answered = make(chan struct{}), make(chan time.Time, 1)
	f.serve(t, net.Connect())
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, transport: func() bus.Transport { return net.Connect() }}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
		time.Sleep(300 * time.Millisecond)
		close(f.release)
	}()
	err = run(ctx, c, append(args, "--output", "json"))
	returned = time.Now()
	select {
	case answered = <-f.answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator was never asked")
	}
	return stdout.String() + stderr.String(), returned, answered, err
}

// TestMigrateCtrlCReturnsAfterTheRelease: Ctrl-C aborts the migration's snapshot and
// returns only with the coordinator's answer, which names what is still held.
func TestMigrateCtrlCReturnsAfterTheRelease(t *testing.T) {
	f := &slowCoordinator{running: true}
	out, returned, answered, err := interrupt(t, f, runMigrate, "web", "--to", "lab-2")
	if returned.Before(answered) {
		t.Fatalf("migrate returned %v before the coordinator's answer (the release)", answered.Sub(returned))
	}
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "web.1 on lab-2: frozen until") {
		t.Fatalf("error %v, want the interruption with the containers still held", err)
	}
	if len(f.aborts) != 1 {
		t.Fatalf("aborts %v, want one", f.aborts)
	}
	if !strings.Contains(out, "aborting migration") {
		t.Fatalf("output %q does not say the migration is being aborted", out)
	}
}

// TestMigrateCtrlCPastItsSnapshotWaitsForTheEnd: a migration past its snapshot cannot be
// aborted; Ctrl-C says so and waits for its outcome.
func TestMigrateCtrlCPastItsSnapshotWaitsForTheEnd(t *testing.T) {
	f := &slowCoordinator{running: false}
	out, returned, answered, err := interrupt(t, f, runMigrate, "web", "--to", "lab-2")
	if returned.Before(answered) {
		t.Fatal("migrate returned before the migration ended")
	}
	if err != nil {
		t.Fatalf("error %v, want the migration's own outcome (it completed)", err)
	}
	if !strings.Contains(out, "cannot be interrupted now") {
		t.Fatalf("output %q does not say the migration cannot be interrupted", out)
	}
}

// TestRestoreCtrlCWaitsForTheEnd: a restore is not stopped half-way: Ctrl-C says so and
// the command returns with the restore's outcome.
func TestRestoreCtrlCWaitsForTheEnd(t *testing.T) {
	f := &slowCoordinator{}
	out, returned, answered, err := interrupt(t, f, runRestore, "web-20261206-000000-abcdef")
	if returned.Before(answered) {
		t.Fatal("restore returned before the restore ended")
	}
	if err != nil {
		t.Fatalf("error %v, want the restore's outcome (it completed)", err)
	}
	if !strings.Contains(out, "cannot be stopped half-way") || !strings.Contains(out, "web.1") {
		t.Fatalf("output %q: want the notice and the restore's result", out)
	}
	if len(f.aborts) != 0 {
		t.Fatalf("a restore was sent aborts: %v", f.aborts)
	}
}

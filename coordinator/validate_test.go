package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

// TestBadNamesRefusedBeforeAnythingIsTouched: a request with a bad snapshot id, stack
// name, node name or SERVICE.SLOT key is refused as a bad request by every entry point
// of the API, and no node hears of it: no plan, no lock, no freeze, no restore, no
// manifest written, the stack's lock free.
func TestBadNamesRefusedBeforeAnythingIsTouched(t *testing.T) {
	e := newEnvWith(t, func(c *coordinator.Config) {
		c.Restorer = &restore.AgentRestorer{Nodes: restore.AgentNodes{Bus: c.Bus, AddrOf: func(n string) (string, bool) { return n, true }, Timeout: 5 * time.Second}}
	}, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("snap-ok"); err != nil {
		t.Fatalf("a good snapshot: %v", err)
	}
	waitFor(t, "every container released", func() bool { return len(e.held()) == 0 })

	var mu sync.Mutex
	var heard []string
	// Everything addressed to a node (not the agents' own heartbeats).
	for _, subj := range []string{"swarmckpt.v1.node.>", "swarmckpt.v1.agent.lab-1.>", "swarmckpt.v1.agent.lab-2.>", "swarmckpt.v1.agent.lab-3.>"} {
		sub, err := e.net.Connect().Subscribe(subj, func(m *bus.Msg) {
			mu.Lock()
			heard = append(heard, m.Subject)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}

	long := func(n int) string { return strings.Repeat("x", n) }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := func(name string, f func() error, says string) {
		t.Helper()
		err := f()
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want a bad request saying %q", name, err, says)
		}
	}
	snap := func(req api.SnapshotRequest) func() error {
		return func() error { _, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, req); return err }
	}
	restore := func(req api.RestoreRequest) func() error {
		return func() error { _, err := api.Call[api.RestoreResult](ctx, e.client, api.OpRestore, req); return err }
	}
	migrate := func(req api.MigrateRequest) func() error {
		return func() error { _, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, req); return err }
	}
	call("snapshot --id a/b", snap(api.SnapshotRequest{ID: "a/b", Stack: "bank"}), `snapshot id "a/b" contains '/'`)
	call("snapshot with a 3000-character id", snap(api.SnapshotRequest{ID: long(3000), Stack: "bank"}), "3000 characters long")
	call("snapshot of a 5000-character stack", snap(api.SnapshotRequest{Stack: long(5000)}), "stack name")
	call("snapshot of stack a.b", snap(api.SnapshotRequest{Stack: "a.b"}), `contains '.'`)
	call("snapshot of no stack", snap(api.SnapshotRequest{}), "empty stack name")
	call("restore a/b", restore(api.RestoreRequest{ID: "a/b"}), "snapshot id")
	call("restore to node lab.2", restore(api.RestoreRequest{ID: "snap-ok", Targets: map[string]string{"bank_holder.1": "lab.2"}}), "target of bank_holder.1: node name")
	call("restore of key bank_holder", restore(api.RestoreRequest{ID: "snap-ok", Targets: map[string]string{"bank_holder": "lab-2"}}), "no '.SLOT'")
	call("migrate a 5000-character stack", migrate(api.MigrateRequest{Stack: long(5000), To: "lab-2"}), "stack name")
	call("migrate --to lab>2", migrate(api.MigrateRequest{Stack: "bank", To: "lab>2"}), "node name")
	call("migrate --from ''", migrate(api.MigrateRequest{Stack: "bank", From: "lab 1"}), "node name")
	call("migrate with id a b", migrate(api.MigrateRequest{Stack: "bank", ID: "a b", To: "lab-2"}), "snapshot id")
	call("inspect a/b", func() error {
		_, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "a/b"})
		return err
	}, "snapshot id")
	call("rm ../x", func() error {
		_, err := api.Call[api.RemoveResult](ctx, e.client, api.OpRemove, api.RemoveRequest{ID: "../x"})
		return err
	}, "snapshot id")
	call("abort 3000 characters", func() error {
		_, err := api.Call[api.AbortResult](ctx, e.client, api.OpAbort, api.AbortRequest{ID: long(3000)})
		return err
	}, "snapshot id")
	call("ls a/b", func() error {
		_, err := api.Call[api.ListResult](ctx, e.client, api.OpList, api.ListRequest{Stack: "a/b"})
		return err
	}, "stack name")

	// A good request afterwards still reaches the nodes: the subscriptions do hear.
	ls, err := api.Call[api.ListResult](ctx, e.client, api.OpList, api.ListRequest{})
	if err != nil || len(ls.Snapshots) != 1 || ls.Snapshots[0].ID != "snap-ok" {
		t.Fatalf("snapshots after the bad requests: %+v %v, want snap-ok alone", ls, err)
	}
	mu.Lock()
	if len(heard) != 0 {
		t.Errorf("the nodes heard of the bad requests: %v", heard)
	}
	mu.Unlock()
	for _, c := range bankStack().Containers {
		if n := e.execs[c.Node].Dumps(c.ContainerID); n != 1 {
			t.Errorf("%s dumped %d times, want once (snap-ok)", c.ContainerID, n)
		}
	}
	if h := e.held(); len(h) != 0 {
		t.Errorf("containers held: %v", h)
	}
	if l, err := e.store.LockStack(context.Background(), "bank", "probe", time.Second); err != nil {
		t.Errorf("the stack's lock is taken: %v", err)
	} else {
		_ = l.Unlock(context.Background())
	}
	if _, err := e.snapshot("snap-ok2"); err != nil {
		t.Fatalf("a good snapshot after the bad requests: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) == 0 {
		t.Fatal("the subscriptions heard nothing of a good snapshot either: they prove nothing")
	}
}

// TestNewIDIsValid: the ids the coordinator and the CLI generate pass api.ValidID for
// every valid stack name, the longest included.
func TestNewIDIsValid(t *testing.T) {
	for _, st := range []string{"bank", "a", strings.Repeat("s", api.MaxStackLen), "my_stack-2"} {
		if err := api.ValidStack(st); err != nil {
			t.Fatalf("stack %q: %v", st, err)
		}
		id := coordinator.NewID(st, time.Now())
		if err := api.ValidID(id); err != nil {
			t.Errorf("NewID(%q) = %q: %v", st, id, err)
		}
	}
}

package coordinator_test

// Bad names on a real lab (issue 21, "Bad ids"): a subtest of TestIntegrationE2E.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// badNamesTouchNothing: `snapshot --id a/b bank`, a 3,000-character id and a
// 5,000-character stack name exit 2 from the CLI; the same requests sent straight to
// the coordinator over NATS (any client) are refused as bad requests; no node agent
// hears of any of them (no plan, lock or freeze), the snapshot list is unchanged and
// every bank holder still answers.
func (e *e2e) badNamesTouchNothing(t *testing.T) {
	e.t = t
	list := func() []string {
		out, code := e.ctl(20*time.Second, "ls", "--output", "json")
		if code != 0 {
			t.Fatalf("ls: exit %d\n%s", code, out)
		}
		var ms []*store.Manifest
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			t.Fatalf("ls: %v\n%s", err, out)
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID+"/"+string(m.State))
		}
		return ids
	}
	before := list()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := natsbus.Connect(ctx, natsbus.Config{URL: e.nats, UserFile: natsauth.UserFile(natsauth.Dir(e.dir), natsauth.RoleCoordinator),
		CAFile: embedded.NATSCAPath(e.dir), Name: "badnames-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var mu sync.Mutex
	var heard []string
	// Everything addressed to a node (not the agents' own heartbeats).
	for _, subj := range []string{"swarmckpt.v1.node.>", "swarmckpt.v1.peer.>", "swarmckpt.v1.agent." + e.node(1) + ".>",
		"swarmckpt.v1.agent." + e.node(2) + ".>", "swarmckpt.v1.agent." + e.node(3) + ".>"} {
		sub, err := tr.Subscribe(subj, func(m *bus.Msg) {
			mu.Lock()
			heard = append(heard, m.Subject)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}

	id3000, stack5000 := strings.Repeat("i", 3000), strings.Repeat("s", 5000)
	for _, args := range [][]string{{"snapshot", "--id", "a/b", "bank"}, {"snapshot", "bank", "--id", id3000}, {"snapshot", stack5000}} {
		out, code := e.ctl(time.Minute, args...)
		if code != 2 || !strings.Contains(out, "use ") {
			t.Errorf("%.60q: exit %d, want 2 saying what is allowed\n%.400s", args, code, out)
		}
	}
	cl := api.Client{T: tr}
	for _, req := range []api.SnapshotRequest{{ID: "a/b", Stack: "bank"}, {ID: id3000, Stack: "bank"}, {Stack: stack5000}} {
		_, err := api.Call[api.SnapshotResult](ctx, cl, api.OpSnapshot, req)
		if !errors.Is(err, api.ErrBadRequest) {
			t.Errorf("snapshot request %.60q of %.60q straight to the coordinator: %v, want a bad request", req.ID, req.Stack, err)
		}
	}
	if _, err := api.Call[api.MigrateResult](ctx, cl, api.OpMigrate, api.MigrateRequest{Stack: "bank", To: "no/such/node"}); !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("migrate --to no/such/node straight to the coordinator: %v, want a bad request", err)
	}

	if after := list(); !slices.Equal(before, after) {
		t.Errorf("the snapshot list changed: %v, was %v", after, before)
	}
	if q, ok := e.bankOK(); !ok {
		t.Errorf("a bank holder does not answer (frozen or locked?):\n%s", q)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 0 {
		t.Errorf("node agents heard of the bad requests: %v", heard)
	}
}

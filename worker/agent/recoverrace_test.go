package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// stallHolder is a Holder whose Thaw of container c waits until release is closed,
// after closing entered (once).
type stallHolder struct {
	worker.Holder
	c       string
	entered chan struct{}
	once    *sync.Once
	release chan struct{}
}

func (s stallHolder) Thaw(ctx context.Context, name string) error {
	if name == s.c {
		s.once.Do(func() { close(s.entered) })
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Holder.Thaw(ctx, name)
}

// A restarted agent releases what its predecessor held for an earlier snapshot of
// another algorithm (chandy-lamport) on that algorithm's queue; a plan of a new
// snapshot (blocking) for the same container, arriving meanwhile, would lock and
// freeze it on its own queue beside that release, which then lifts the new lock
// (fault seed 9257: messages crossed the migration's cut, the bank lost them). Such a
// plan is refused until the release is done, and accepted after it.
func TestPlanRefusedWhileARecoveredReleaseRuns(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "chandy-lamport"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chandy-lamport", "ctr1.rec"), algorithms.ContainerRecord{Epoch: 3, Snapshot: "snap-3"}.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := worker.NewFake("n1")
	ex.Hold("ctr1")
	roles := ex.Roles()
	sh := stallHolder{Holder: roles.Holder, c: "ctr1", entered: make(chan struct{}), once: &sync.Once{}, release: make(chan struct{})}
	roles.Holder = sh
	net := bus.NewNetwork()
	a, err := agent.New(agent.Config{Node: "n1", Bus: net.Connect(), Worker: roles, Algorithms: lookup,
		StateDir: dir, TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-sh.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the restarted agent did not release ctr1")
	}
	client := net.Connect()
	plan := func(id string) error {
		t.Helper()
		b, _ := json.Marshal(node.Plan{Snapshot: id, Stack: "st", Algorithm: "blocking", Epoch: 4, Containers: []node.Target{{ID: "ctr1", Node: "n1"}}})
		deadline := time.Now().Add(5 * time.Second)
		for {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			out, err := client.Request(cctx, node.PlanSubject("n1"), b)
			ccancel()
			if errors.Is(err, bus.ErrNoResponders) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			var rep node.PlanReply
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatal(err)
			}
			return rep.Err()
		}
	}
	if err := plan("snap-4"); err == nil || !strings.Contains(err.Error(), "still being released") || !strings.Contains(err.Error(), "ctr1") {
		t.Fatalf("plan for ctr1 while its predecessor's hold is being released: %v, want refused naming ctr1", err)
	}
	close(sh.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := plan("snap-5")
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "still being released") || time.Now().After(deadline) {
			t.Fatalf("plan for ctr1 once it was released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// A restarted agent released ctr1, which its predecessor held parked since its dump
// for a migration (fault seed 1793): the migration's stop of ctr1 then reaches an agent
// without the snapshot's plan. It must answer per container, never end one it does not
// hold: ctr1 ran on (refused with node.ErrNotParked, naming the restart), ctr9 is gone;
// a release (Resume) of them does nothing and says the same.
func TestStopOfContainersNotParkedSaysWhatTheyAre(t *testing.T) {
	dir := t.TempDir()
	rec := algorithms.ContainerRecord{Epoch: 3, Snapshot: "mig-1"}.Encode()
	if err := os.MkdirAll(filepath.Join(dir, "blocking"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocking", "ctr1.rec"), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	ex := worker.NewFake("n1")
	ex.Hold("ctr1") // parked by the killed agent: frozen and locked since its dump
	ex.Gone("ctr9")
	net := bus.NewNetwork()
	restartUntilReleased(t, ex, net.Connect(), dir)
	ctx := context.Background()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	client := net.Connect()
	ask := func(resume bool) (node.StopReply, error) {
		t.Helper()
		b, _ := json.Marshal(node.StopRequest{Snapshot: "mig-1", Containers: []string{"ctr1", "ctr9"}, Resume: resume})
		var out []byte
		for {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			out, err = client.Request(cctx, node.StopSubject("n1"), b)
			ccancel()
			if !errors.Is(err, bus.ErrNoResponders) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // the agent subscribes as it starts
		}
		if err != nil {
			t.Fatal(err)
		}
		var rep node.StopReply
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		return rep, rep.Err()
	}
	outcomes := func(rep node.StopReply) map[string]string {
		m := map[string]string{}
		for _, o := range rep.Containers {
			m[o.Container] = o.Outcome
		}
		return m
	}

	rep, err := ask(false)
	if !errors.Is(err, node.ErrNotParked) || !strings.Contains(err.Error(), "ctr1") || !strings.Contains(err.Error(), "agent restarted") || !strings.Contains(err.Error(), "runs on where it was") {
		t.Errorf("stop of a container released by the agent's restart: %v; want node.ErrNotParked naming ctr1 and the restart", err)
	}
	if got := outcomes(rep); got["ctr1"] != node.StopRunning || got["ctr9"] != node.StopGone {
		t.Errorf("stop outcomes %v, want ctr1 %s, ctr9 %s", got, node.StopRunning, node.StopGone)
	}
	if s := ex.Stopped(); len(s) > 0 {
		t.Errorf("containers ended although no longer parked (they ran on since): %v", s)
	}

	rep, err = ask(true)
	if err != nil {
		t.Errorf("release of containers not parked: %v, want nothing done", err)
	}
	if got := outcomes(rep); got["ctr1"] != node.StopRunning || got["ctr9"] != node.StopGone {
		t.Errorf("release outcomes %v, want ctr1 %s, ctr9 %s", got, node.StopRunning, node.StopGone)
	}
}

package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// The drain hold through the agent: OpArm arms, a held stop is reported once on
// DrainEventSubject, OpHeld checkpoints it (the stop stays held), then releases it
// with the verdict checkpointed; a stop of a disarmed container is not held.
func TestAgentDrainHold(t *testing.T) {
	net := bus.NewNetwork()
	f := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: f.Roles(), DrainPoll: 5 * time.Millisecond, DrainRepublish: 20 * time.Millisecond})
	conn := net.Connect()
	events := make(chan node.DrainEvent, 16)
	sub, err := conn.Subscribe(node.DrainEventSubject, func(m *bus.Msg) {
		var e node.DrainEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Error(err)
		}
		events <- e
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	var arm node.ArmReply
	b, _ := json.Marshal(node.ArmRequest{Arm: []node.ArmEntry{
		{Container: "web", Budget: 9 * time.Second, Policy: "migrate", Service: "st_web", Slot: 1},
		{Container: "bad"}, // no budget
	}})
	ask(t, conn, node.ArmSubject("n1"), b, &arm)
	if err := arm.Err(); err != nil || len(arm.Failed) != 1 || arm.Failed["bad"] == "" {
		t.Fatalf("arm: %+v %v, want only 'bad' failed", arm.Failed, err)
	}
	if !f.HoldStop("web", "15") {
		t.Fatal("the armed container's stop was not held")
	}
	var e node.DrainEvent
	select {
	case e = <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("no drain event for the held stop")
	}
	if e.Node != "n1" || e.ContainerID != "web" || e.What != node.DrainHeld || e.Service != "st_web" || e.Slot != 1 || e.Policy != "migrate" || e.Signal != "15" {
		t.Fatalf("event %+v", e)
	}
	// Undecided, it is reported again (a coordinator that missed it still decides).
	select {
	case e2 := <-events:
		if e2.ContainerID != "web" || !e2.Deadline.Equal(e.Deadline) {
			t.Fatalf("second event %+v, want the same hold", e2)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an undecided held stop was not reported again")
	}

	var held node.HeldReply
	b, _ = json.Marshal(node.HeldRequest{Container: "web", Set: "drain.st_web.1"})
	ask(t, conn, node.HeldSubject("n1"), b, &held)
	if err := held.Err(); err != nil || len(held.Files) == 0 {
		t.Fatalf("held checkpoint: %+v %v, want the set's files", held.Files, err)
	}
	if _, ok := f.Verdict("web"); ok {
		t.Fatal("a verdict before the release")
	}
	// Checkpointed and not released (its coordinator may have died), it is reported
	// again with its set: a new leader carries the drain on from it.
	for deadline := time.After(5 * time.Second); ; {
		var e3 node.DrainEvent
		select {
		case e3 = <-events:
		case <-deadline:
			t.Fatal("a checkpointed, unreleased held stop was not reported again with its set")
		}
		if e3.ContainerID == "web" && e3.Set == "drain.st_web.1" && e3.What == node.DrainHeld {
			break
		}
	}
	b, _ = json.Marshal(node.HeldRequest{Container: "web", Release: true})
	ask(t, conn, node.HeldSubject("n1"), b, &held)
	if err := held.Err(); err != nil {
		t.Fatalf("held release: %v", err)
	}
	if v, ok := f.Verdict("web"); !ok || v.Outcome != ociwrap.VerdictCheckpointed {
		t.Fatalf("verdict %+v %v, want checkpointed", v, ok)
	}
	ask(t, conn, node.HeldSubject("n1"), b, &held)
	if err := held.Err(); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("release of no held stop: %v, want node.ErrNotFound", err)
	}
	b, _ = json.Marshal(node.HeldRequest{Container: "web"})
	ask(t, conn, node.HeldSubject("n1"), b, &held)
	if err := held.Err(); !errors.Is(err, node.ErrInvalidArgument) {
		t.Fatalf("checkpoint without a set: %v, want node.ErrInvalidArgument", err)
	}

	b, _ = json.Marshal(node.ArmRequest{Disarm: []string{"web", "never-armed"}})
	var disarm node.ArmReply
	ask(t, conn, node.ArmSubject("n1"), b, &disarm)
	if err := disarm.Err(); err != nil || len(disarm.Failed) != 0 {
		t.Fatalf("disarm: %+v %v", disarm.Failed, err)
	}
	if f.HoldStop("web", "15") {
		t.Fatal("a disarmed container's stop was held")
	}
}

// A hold that ends undecided at its deadline (the wrapper passed the stop on) is
// reported as failed, with why, so that the coordinator's event stream says so.
func TestAgentReportsTimedOutHold(t *testing.T) {
	net := bus.NewNetwork()
	f := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: f.Roles(), DrainPoll: 5 * time.Millisecond, DrainRepublish: 20 * time.Millisecond})
	conn := net.Connect()
	events := make(chan node.DrainEvent, 64)
	sub, err := conn.Subscribe(node.DrainEventSubject, func(m *bus.Msg) {
		var e node.DrainEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Error(err)
		}
		events <- e
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := f.Arm(context.Background(), "web", worker.ArmOptions{Budget: 150 * time.Millisecond, Policy: "migrate", Service: "st_web", Slot: 1}); err != nil {
		t.Fatal(err)
	}
	if !f.HoldStop("web", "15") {
		t.Fatal("stop not held")
	}
	timeout := time.After(5 * time.Second)
	held := false
	for {
		select {
		case e := <-events:
			switch e.What {
			case node.DrainHeld:
				held = true
			case node.DrainFailed:
				if !held || e.ContainerID != "web" || !strings.Contains(e.Reason, "SIGKILL at stop_grace_period") || time.Now().Before(e.Deadline) {
					t.Fatalf("failed event %+v (held reported first: %v)", e, held)
				}
				return
			}
		case <-timeout:
			t.Fatal("no failed event for a hold that timed out")
		}
	}
}

package coordinator

import (
	"reflect"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
)

func TestPlanDrain(t *testing.T) {
	migrate := &policy.Policy{Enabled: true, OnDrain: policy.OnDrainMigrate}
	exact := &policy.Policy{Enabled: true, OnDrain: policy.OnDrainMigrate, Mode: api.ModeExact}
	off := &policy.Policy{Enabled: false, OnDrain: policy.OnDrainMigrate}
	sched := &policy.Policy{Enabled: true, Schedule: "@every 1m"}
	policies := map[string]*policy.Policy{"bank": migrate, "echo": exact, "paused": off, "snap": sched, "away": migrate}
	onNode := map[string]int{"bank": 2, "echo": 1, "paused": 1, "snap": 3, "plain": 1, "away": 0}
	got := planDrain(policies, onNode, "")
	want := drainPlan{
		Migrate: []drainStack{{Stack: "bank", Mode: api.ModeSwarm, Moved: 2}, {Stack: "echo", Mode: api.ModeExact, Moved: 1}},
		Left:    []string{"paused", "plain", "snap"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan %+v, want %+v", got, want)
	}
	// The request's mode wins over the label.
	got = planDrain(policies, onNode, api.ModeExact)
	if got.Migrate[0].Mode != api.ModeExact || got.Migrate[1].Mode != api.ModeExact {
		t.Fatalf("--mode exact: %+v", got.Migrate)
	}
}

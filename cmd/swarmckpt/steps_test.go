package main

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// The migration's step times print in order, the dump inside its snapshot step.
func TestStepsString(t *testing.T) {
	got := stepsString([]api.StepTime{{Step: "plan", MS: 3}, {Step: "snapshot", MS: 2100}, {Step: "dump", MS: 1200},
		{Step: "preflight", MS: 40}, {Step: "restore", MS: 900}})
	if want := "plan 3ms, snapshot 2100ms (dump 1200ms), preflight 40ms, restore 900ms"; got != want {
		t.Fatalf("stepsString: %q, want %q", got, want)
	}
}

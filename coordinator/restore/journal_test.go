package restore_test

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		step, parked string
		want         restore.Action
	}{
		{restore.StepBegun, "", restore.ActRelease},
		{restore.StepBegun, "bank-2", restore.ActRelease},
		{restore.StepStopping, "bank-2", restore.ActRollBack},
		{restore.StepRestoring, "bank-2", restore.ActRollBack},
		{restore.StepStopping, "", restore.ActScaleBack},
		{restore.StepRestoring, "", restore.ActScaleBack},
		{restore.StepRestored, "bank-2", restore.ActRollForward},
		{restore.StepRestored, "", restore.ActRollForward},
		{"from-a-newer-coordinator", "bank-2", restore.ActRollBack},
	} {
		if got := restore.Decide(&store.Operation{Step: tc.step, Parked: tc.parked}); got != tc.want {
			t.Errorf("Decide(step %q, parked %q) = %q, want %q", tc.step, tc.parked, got, tc.want)
		}
	}
}

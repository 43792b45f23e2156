package restore

import (
	"fmt"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// TestSplitNeverEnded: the moved swarm tasks of a service the dead coordinator's
// stop journaled no end of are released (kept), the others put back; a standalone
// container is always put back; past the stop, or in an older journal (no replicas
// journaled, no Ending), every one counts as ended.
func TestSplitNeverEnded(t *testing.T) {
	m := &store.Manifest{ID: "s1", Containers: []store.Container{
		{Service: "a", Slot: 1, TaskID: "t1"}, {Service: "b", Slot: 1, TaskID: "t2"}, {Service: "c", Slot: 1},
	}}
	for _, tc := range []struct {
		op         store.Operation
		kept, back string
	}{
		{store.Operation{Step: StepStopping, Stopped: map[string]uint64{"a": 1, "b": 1}, Ending: []string{"a"}}, "[b.1]", "[a.1 c.1]"},
		{store.Operation{Step: StepStopping, Stopped: map[string]uint64{"a": 1, "b": 1}}, "[a.1 b.1]", "[c.1]"},
		{store.Operation{Step: StepRestoring, Stopped: map[string]uint64{"a": 1, "b": 1}}, "[]", "[a.1 b.1 c.1]"},
		{store.Operation{Step: StepStopping}, "[]", "[a.1 b.1 c.1]"},
	} {
		kept, run := splitNeverEnded(&tc.op, m)
		keys := func(m store.Manifest) string {
			out := []string{}
			for _, c := range m.Containers {
				out = append(out, c.Key())
			}
			return fmt.Sprint(out)
		}
		if keys(kept) != tc.kept || keys(run) != tc.back || kept.ID != "s1" || run.ID != "s1" {
			t.Errorf("%+v: released %s, put back %s; want %s and %s", tc.op, keys(kept), keys(run), tc.kept, tc.back)
		}
	}
}

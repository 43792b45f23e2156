package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// AddConstraints does what swarm does when a placement constraint is added to
// services: their tasks whose node it excludes are replaced elsewhere (stops runs
// for the old ones, as for a drain), the others stay.
func (d *drainingSwarm) AddConstraints(ctx context.Context, stackName string, services, cs []string) error {
	if err := d.FakeSwarm.AddConstraints(ctx, stackName, services, cs); err != nil {
		return err
	}
	for _, c := range cs {
		var from, to string
		if n, ok := strings.CutPrefix(c, "node.hostname!="); ok {
			from = n
		} else if n, ok := strings.CutPrefix(c, "node.hostname=="); ok {
			to = n
		}
		old := d.Replace(services, from, to)
		d.mu.Lock()
		stops := d.stops
		d.mu.Unlock()
		if stops != nil {
			stops(old)
		}
	}
	return nil
}

func webOn(t *testing.T, ctx context.Context, sw *drainingSwarm) map[string][]stack.Task {
	t.Helper()
	tasks, err := sw.Tasks(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]stack.Task{}
	for _, tk := range tasks {
		if tk.DesiredState == "running" && tk.State == "running" {
			out[tk.Node] = append(out[tk.Node], tk)
		}
	}
	return out
}

// migrate --mode swarm --from NODE moves only the stack's tasks on NODE (issue 16):
// swarm stops them for a placement constraint, the drain hold checkpoints each and
// its replacement elsewhere runs restored from its set; the holders on other nodes
// never stop, the node is not drained, and the constraint goes again at the end.
// The stack needs no on-drain label (web has none): the migration armed its tasks.
func TestMigrateSwarmModeMovesOnlyTheTasksOnTheNode(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	held := holdStops(e, sw)
	for _, st := range []string{"bank", "web"} {
		var before map[string][]stack.Task
		if st == "bank" {
			before = bankOn(t, ctx, sw)
		} else {
			before = webOn(t, ctx, sw)
		}
		if len(before["lab-2"]) == 0 {
			t.Fatalf("%s: no task on lab-2: %+v", st, before)
		}
		*held = nil
		res, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{ID: "mv-" + st, Stack: st, From: "lab-2", Mode: api.ModeSwarm})
		if err != nil {
			t.Fatalf("%s: migrate --mode swarm --from lab-2: %v", st, err)
		}
		if res.Snapshot != nil || len(res.Moved) != len(before["lab-2"]) || res.Copy != api.CopyStreamed {
			t.Fatalf("%s: result %+v, want the %d tasks on lab-2 moved (copy streamed, no stack snapshot)", st, res, len(before["lab-2"]))
		}
		for _, tk := range res.Moved {
			if tk.Fresh || tk.Target == "" || tk.Target == "lab-2" || tk.Set == "" {
				t.Errorf("%s: task %+v: want moved off lab-2 with its set", st, tk)
			}
		}
		if len(*held) != len(before["lab-2"]) {
			t.Errorf("%s: held stops %v, want exactly the %d tasks on lab-2", st, *held, len(before["lab-2"]))
		}
		for _, tk := range before["lab-2"] {
			if v, ok := e.execs["lab-2"].Verdict(tk.ContainerID); !ok || v.Outcome != "checkpointed" {
				t.Errorf("%s: %s's held stop: verdict %+v %v, want checkpointed", st, tk.ContainerID, v, ok)
			}
		}
		var after map[string][]stack.Task
		if st == "bank" {
			after = bankOn(t, ctx, sw)
		} else {
			after = webOn(t, ctx, sw)
		}
		for _, n := range []string{"lab-1", "lab-3"} {
			for _, tk := range before[n] {
				if !slices.ContainsFunc(after[n], func(a stack.Task) bool { return a.TaskID == tk.TaskID && a.ContainerID == tk.ContainerID }) {
					t.Errorf("%s: task %s on %s stopped: after the migration %s runs %+v", st, tk.TaskID, n, n, after[n])
				}
			}
		}
		if slices.Contains(sw.Constraints, "node.hostname!=lab-2") {
			t.Errorf("%s: the placement constraint stayed on the services: %v", st, sw.Constraints)
		}
	}
	if av, _ := sw.NodeAvailability(ctx, "lab-2"); av == stack.AvailabilityDrain {
		t.Error("lab-2 was drained: a migration must not drain the node")
	}
	if sw.Stops != 0 {
		t.Errorf("the stacks were stopped %d times, want never", sw.Stops)
	}
}

// A copy mode the drain hold cannot do is refused before anything changes.
func TestMigrateSwarmModePartialRefusesDirect(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	before := bankOn(t, ctx, sw)
	_, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{ID: "mv-d", Stack: "bank", From: "lab-2", Mode: api.ModeSwarm, Copy: api.CopyDirect})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(ae.Message, "nothing was changed") {
		t.Fatalf("migrate --copy direct --mode swarm: %v, want a bad request saying nothing was changed", err)
	}
	after := bankOn(t, ctx, sw)
	if len(after["lab-2"]) != len(before["lab-2"]) || len(sw.Constraints) != 0 {
		t.Fatalf("something changed: tasks on lab-2 %d -> %d, constraints %v", len(before["lab-2"]), len(after["lab-2"]), sw.Constraints)
	}
}

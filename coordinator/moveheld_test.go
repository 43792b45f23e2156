package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
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

// migrate --mode swarm --copy direct (issue 19): each held stop is dumped straight
// into the node swarm placed its replacement on; the set lives only there (the
// source keeps none), is placed for the slot, and the result and events say direct.
func TestMigrateSwarmModeDirect(t *testing.T) {
	e, sw, rec, ctx := nodeDrainEnv(t, nil)
	held := holdStops(e, sw)
	before := bankOn(t, ctx, sw)
	if len(before["lab-2"]) == 0 {
		t.Fatalf("no task on lab-2: %+v", before)
	}
	res, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{ID: "mv-d", Stack: "bank", From: "lab-2", Mode: api.ModeSwarm, Copy: api.CopyDirect})
	if err != nil {
		t.Fatalf("migrate --mode swarm --copy direct: %v", err)
	}
	if res.Copy != api.CopyDirect || len(res.Moved) != len(before["lab-2"]) || len(*held) != len(before["lab-2"]) {
		t.Fatalf("result %+v (held %v), want the %d tasks on lab-2 moved, copy direct", res, *held, len(before["lab-2"]))
	}
	for _, tk := range res.Moved {
		if tk.Fresh || tk.Target == "" || tk.Target == "lab-2" || tk.Set == "" || tk.Copy != api.CopyDirect {
			t.Errorf("task %+v: want moved off lab-2, copied direct", tk)
			continue
		}
		if e.execs["lab-2"].HasSet(tk.Set) {
			t.Errorf("set %s stayed on the source lab-2: a direct copy keeps none there", tk.Set)
		}
		if !e.execs[tk.Target].HasSet(tk.Set) {
			t.Errorf("set %s is not on the target %s", tk.Set, tk.Target)
		}
		if into := e.execs["lab-2"].DumpedInto(); into[tk.Set] != "" {
			t.Errorf("set %s went through the migration's held DumpInto (%v), not the drain hold's checkpoint", tk.Set, into)
		}
	}
	for _, tk := range before["lab-2"] {
		if v, ok := e.execs["lab-2"].Verdict(tk.ContainerID); !ok || v.Outcome != "checkpointed" {
			t.Errorf("%s's held stop: verdict %+v %v, want checkpointed", tk.ContainerID, v, ok)
		}
	}
	if _, ok := rec.Wait(ctx, func(ev events.Event) bool { return ev.Kind == events.Restored && ev.Copy == api.CopyDirect }); !ok {
		t.Errorf("no restored event saying copy direct: %+v", rec.Events())
	}
	if len(sw.Constraints) != 0 {
		t.Errorf("the placement constraint stayed: %v", sw.Constraints)
	}
}

// What the drain hold cannot do is refused before anything changes: post-copy (swarm
// starts the replacement only once the held source has ended), and direct where a
// node that may hold a stop or take a replacement runs an older worker (naming it).
func TestMigrateSwarmModeRefusesWhatTheHoldCannotDo(t *testing.T) {
	e, sw, _, ctx := nodeDrainEnv(t, nil)
	e.execs["lab-3"].OldFeatures = []string{"dump-into-held", "post-copy-migrate"} // no drain-direct
	e.cancel["lab-3"]()
	e.startAgent("lab-3") // announces what its (older) worker does
	waitFor(t, "lab-3's heartbeat without drain-direct", func() bool {
		for _, w := range coordinator.LiveWorkers(e.svc) {
			if w.Node == "lab-3" {
				return !w.Has("drain-direct") && len(w.Features) > 0
			}
		}
		return false
	})
	before := bankOn(t, ctx, sw)
	for _, tc := range []struct {
		copy string
		want []string
	}{
		{api.CopyPostCopy, []string{"swarm starts the replacement only once that container has ended", "use --copy direct"}},
		{api.CopyDirect, []string{"node lab-3", `"drain-direct"`, "upgrade swarmckpt"}},
	} {
		_, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{Stack: "bank", From: "lab-2", Mode: api.ModeSwarm, Copy: tc.copy})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(ae.Message, "nothing was changed") {
			t.Fatalf("migrate --copy %s --mode swarm: %v, want a bad request saying nothing was changed", tc.copy, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(ae.Message, w) {
				t.Errorf("migrate --copy %s --mode swarm: %q, want it to say %q", tc.copy, ae.Message, w)
			}
		}
	}
	after := bankOn(t, ctx, sw)
	if len(after["lab-2"]) != len(before["lab-2"]) || len(sw.Constraints) != 0 {
		t.Fatalf("something changed: tasks on lab-2 %d -> %d, constraints %v", len(before["lab-2"]), len(after["lab-2"]), sw.Constraints)
	}
}

// The stack's swarmckpt.migration label applies to a swarm-mode migration of only the
// moving tasks: post-copy, which cannot apply to a held stop, copies direct (with a
// warning); with a node whose worker cannot, streamed.
func TestMigrateSwarmModeLabelCopy(t *testing.T) {
	for _, tc := range []struct {
		name, label string
		old         bool // lab-3 runs an older worker (no drain-direct)
		want        string
	}{
		{name: "PostCopyCopiesDirect", label: "post-copy", want: api.CopyDirect},
		{name: "DirectOnAnOlderNodeStreams", label: "direct", old: true, want: api.CopyStreamed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, sw, _, ctx := nodeDrainEnv(t, map[string]string{policy.KeyMigration: tc.label})
			if tc.old {
				e.execs["lab-3"].OldFeatures = []string{"dump-into-held", "post-copy-migrate"}
				e.cancel["lab-3"]()
				e.startAgent("lab-3")
				waitFor(t, "lab-3's heartbeat without drain-direct", func() bool {
					for _, w := range coordinator.LiveWorkers(e.svc) {
						if w.Node == "lab-3" {
							return !w.Has("drain-direct") && len(w.Features) > 0
						}
					}
					return false
				})
			}
			holdStops(e, sw)
			res, err := api.Call[api.MigrateResult](ctx, e.client, api.OpMigrate, api.MigrateRequest{ID: "mv-l", Stack: "bank", From: "lab-2", Mode: api.ModeSwarm})
			if err != nil {
				t.Fatalf("migrate --mode swarm with label %s: %v", tc.label, err)
			}
			if res.Copy != tc.want || len(res.Moved) == 0 {
				t.Fatalf("result %+v, want copy %s", res, tc.want)
			}
			for _, tk := range res.Moved {
				if tk.Fresh || tk.Copy != tc.want || e.execs["lab-2"].HasSet(tk.Set) != (tc.want == api.CopyStreamed) {
					t.Errorf("task %+v: want moved with copy %s (a set left on lab-2 only when streamed)", tk, tc.want)
				}
			}
		})
	}
}

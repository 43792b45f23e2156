package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// lazyNodes records what the coordinator asks the nodes of a post-copy migration;
// WaitLazy fails for the sets in lost (the source's page server failed).
type lazyNodes struct {
	Nodes
	lost          map[string]error
	reconnectErr  error
	disconnectErr map[string]error // by node
	onWait        func()           // called by WaitLazy first, if set
	// standalone: what Standalone lists, by node (nil: nothing restored there).
	standalone map[string][]node.Standalone

	mu    sync.Mutex
	calls []string
}

func (n *lazyNodes) note(f string, a ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf(f, a...))
}

func (n *lazyNodes) Disconnect(_ context.Context, nodeName string, ids []string) error {
	n.note("disconnect %s %s", nodeName, strings.Join(ids, ","))
	return n.disconnectErr[nodeName]
}

func (n *lazyNodes) WaitLazy(_ context.Context, nodeName, set string) error {
	n.note("waitlazy %s %s", nodeName, set)
	if n.onWait != nil {
		n.onWait()
	}
	return n.lost[set]
}

func (n *lazyNodes) StopParked(_ context.Context, nodeName string, req node.StopRequest) (*node.StopReply, error) {
	if req.Resume {
		n.note("release %s %s", nodeName, strings.Join(req.Containers, ","))
		return &node.StopReply{}, nil
	}
	n.note("stop %s %s", nodeName, strings.Join(req.Containers, ","))
	return &node.StopReply{}, nil
}

func (n *lazyNodes) Reconnect(_ context.Context, nodeName string, req node.ReconnectRequest) error {
	for _, h := range req.Containers {
		var nets []string
		for _, a := range h.Networks {
			nets = append(nets, fmt.Sprintf("%s@%s%v", a.Network, a.IPv4, a.Aliases))
		}
		n.note("reconnect %s %s %s %s", nodeName, h.Container, h.Set, strings.Join(nets, ","))
	}
	return n.reconnectErr
}

func (n *lazyNodes) Remove(_ context.Context, nodeName string, ids []string) error {
	n.note("remove %s %s", nodeName, strings.Join(ids, ","))
	return nil
}

func (n *lazyNodes) Standalone(_ context.Context, nodeName, _ string) ([]node.Standalone, error) {
	return n.standalone[nodeName], nil
}

func (n *lazyNodes) Drop(_ context.Context, nodeName, set string) error {
	n.note("drop %s %s", nodeName, set)
	return nil
}

func (n *lazyNodes) got() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.calls)
}

// TestPostCopyStopAndFinish: a partial post-copy migration's stop takes the post-copy
// source off its networks and neither ends nor removes it (it serves the pages of the
// restore), while a plainly dumped container is ended and removed; after the restore,
// the source is ended, removed and its set (no pages) dropped only once WaitLazy says
// every page was served, with an event saying when. A failed wait is data loss: an
// error naming the container, recorded in the snapshot, and the source left as it is.
func TestPostCopyStopAndFinish(t *testing.T) {
	setup := func(t *testing.T, lost map[string]error) (*Restores, *lazyNodes, *gateHost, *store.Manifest, store.Store) {
		n := &lazyNodes{lost: lost}
		h := &gateHost{}
		st := store.NewMemory()
		s, err := New(Config{Host: h, Store: st, Bus: bus.NewNetwork().Connect(), Nodes: n,
			NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m := &store.Manifest{ID: "m", Stack: "st", Containers: []store.Container{
			{Service: "echo", Slot: 1, Node: "a", ContainerID: "c-echo", PostCopy: true},
			{Service: "db", Slot: 1, Node: "a", ContainerID: "c-db"},
		}}
		if err := st.Create(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return s, n, h, m, st
	}
	t.Run("StopDisconnectsTheSource", func(t *testing.T) {
		s, n, _, m, _ := setup(t, nil)
		if _, err := s.stopMoving(context.Background(), m, s.newParkedStack(m), &stack.Stack{}, nil); err != nil {
			t.Fatal(err)
		}
		got := n.got()
		want := []string{"disconnect a c-echo", "stop a c-db", "remove a c-db"}
		if !slices.Equal(got, want) {
			t.Fatalf("the stop asked the nodes %q, want %q (the post-copy source neither ended nor removed)", got, want)
		}
	})
	t.Run("StopRefusedReconnects", func(t *testing.T) {
		s, n, _, m, _ := setup(t, nil)
		m.Containers = append(m.Containers, store.Container{Service: "echo", Slot: 2, Node: "b", ContainerID: "c-echo2", PostCopy: true, Networks: []string{"st_net"}, IPs: []string{"10.5.0.4"}})
		n.disconnectErr = map[string]error{"b": errors.New("network st_net: no such endpoint")}
		_, err := s.stopMoving(context.Background(), m, s.newParkedStack(m), &stack.Stack{}, nil)
		if err == nil || !strings.Contains(err.Error(), "node b") {
			t.Fatalf("stop with a failed disconnect on b: %v, want an error naming node b", err)
		}
		want := []string{"disconnect a c-echo", "disconnect b c-echo2",
			"reconnect a c-echo " + node.SetID("m", "echo.1") + " ", "reconnect b c-echo2 " + node.SetID("m", "echo.2") + " st_net@10.5.0.4[]"}
		if got := n.got(); !slices.Equal(got, want) {
			t.Fatalf("the refused stop asked the nodes %q, want %q (every source tried put back on its networks; nothing ended)", got, want)
		}
	})
	t.Run("FinishAfterTheLastPage", func(t *testing.T) {
		s, n, h, m, st := setup(t, nil)
		pk := s.newParkedStack(m)
		if err := s.finishPostCopy(context.Background(), m, pk, map[string]string{"echo.1": "b"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		set := node.SetID("m", "echo.1")
		want := []string{"waitlazy a " + set, "stop a c-echo", "remove a c-echo", "drop a " + set}
		if got := n.got(); !slices.Equal(got, want) {
			t.Fatalf("after the restore the nodes were asked %q, want %q", got, want)
		}
		if rec, err := st.Get(context.Background(), "m"); err != nil || rec.Containers[0].PagesArrived.IsZero() {
			t.Errorf("record %+v (%v): want echo.1's last page's arrival recorded (before its source is ended)", rec, err)
		}
		// Finished again (a coordinator following one that died after ending the
		// source): not waited for again.
		if err := s.finishPostCopy(context.Background(), m, s.newParkedStack(m), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := n.got(); slices.Index(got[len(want):], "waitlazy a "+set) >= 0 {
			t.Errorf("finished again, the nodes were asked %q: waited again for pages recorded arrived", got[len(want):])
		}
		found := false
		for _, e := range h.events {
			found = found || (e.Phase == "post-copy-done" && strings.Contains(e.Message, "echo.1") && strings.Contains(e.Message, "last page"))
		}
		if !found {
			t.Errorf("no event saying when the last page of echo.1 arrived: %+v", h.events)
		}
	})
	t.Run("SourceLostIsDataLoss", func(t *testing.T) {
		set := node.SetID("m", "echo.1")
		s, n, _, m, st := setup(t, map[string]error{set: fmt.Errorf("node a: %w", node.ErrUnavailable)})
		ev := &events.Recorder{}
		s.cfg.Events = ev
		err := s.finishPostCopy(context.Background(), m, s.newParkedStack(m), map[string]string{"echo.1": "b"}, time.Now())
		if err == nil || !strings.Contains(err.Error(), "lost data") || !strings.Contains(err.Error(), "echo.1") {
			t.Fatalf("finish with the source lost: %v, want data loss naming echo.1", err)
		}
		if got, want := n.got(), []string{"waitlazy a " + set}; !slices.Equal(got, want) {
			t.Errorf("after the failed wait the nodes were asked %q, want %q (the source left as it is)", got, want)
		}
		rec, gerr := st.Get(context.Background(), "m")
		if gerr != nil {
			t.Fatal(gerr)
		}
		if rec.Containers[0].PagesLost == "" || rec.Containers[1].PagesLost != "" || !rec.Containers[0].PagesArrived.IsZero() {
			t.Errorf("record: echo.1 pages_lost=%q pages_arrived=%v, db.1 pages_lost=%q; want echo.1's marked lost only", rec.Containers[0].PagesLost, rec.Containers[0].PagesArrived, rec.Containers[1].PagesLost)
		}
		want := events.Event{Kind: events.PagesLost, Stack: "st", Node: "a", Service: "echo", Slot: 1, Container: "c-echo", Snapshot: "m", Set: set, Target: "b"}
		evs := ev.Events()
		if len(evs) != 1 || evs[0].Reason == "" || !strings.Contains(evs[0].Reason, "node a") {
			t.Fatalf("events %+v, want one pages-lost naming echo.1 with the wait's error", evs)
		}
		got := evs[0]
		got.At, got.Reason = time.Time{}, ""
		if got != want {
			t.Errorf("event %+v, want %+v", got, want)
		}
	})
}

// TestPostCopyTargetStoppedPutsTheSourceBack: when the wait for a post-copy
// container's last page fails and its restored container is seen ended on its target
// (its restore failed after it began to run), the source, which still holds its
// memory as of the cut, is put back where it was (what is left on the target removed,
// its page server stopped, its networks given back, released) instead of being left
// frozen: no pages_lost, a warning recorded, an error saying it was put back. Still
// running there, it is data loss as before.
func TestPostCopyTargetStoppedPutsTheSourceBack(t *testing.T) {
	set := node.SetID("m", "echo.1")
	for _, running := range []bool{false, true} {
		t.Run(fmt.Sprintf("running=%v", running), func(t *testing.T) {
			n := &lazyNodes{lost: map[string]error{set: errors.New("node a: page server: connection reset")}}
			st := store.NewMemory()
			s, err := New(Config{Host: &gateHost{}, Store: st, Bus: bus.NewNetwork().Connect(), Nodes: n,
				NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			m := &store.Manifest{ID: "m", Stack: "st", Containers: []store.Container{{Service: "echo", Slot: 1, Node: "a", ContainerID: "c-echo", PostCopy: true,
				Networks: []string{"st_net"}, IPs: []string{"10.5.0.3"}}}}
			if err := st.Create(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			name := ContainerName("m", m.Containers[0])
			n.standalone = map[string][]node.Standalone{"b": {{Name: "other", Running: true}, {Name: name, Running: running}}}
			err = s.finishPostCopy(context.Background(), m, s.newParkedStack(m), map[string]string{"echo.1": "b"}, time.Now())
			rec, _ := st.Get(context.Background(), "m")
			got := n.got()
			if running {
				if err == nil || !strings.Contains(err.Error(), "lost data") || rec.Containers[0].PagesLost == "" || slices.Contains(got, "release a c-echo") {
					t.Fatalf("target still running: %v, record %+v, calls %q; want data loss, the source left as it is", err, rec.Containers[0], got)
				}
				return
			}
			want := []string{"waitlazy a " + set, "remove b " + name, "reconnect a c-echo " + set + " st_net@10.5.0.3[]", "release a c-echo"}
			if !slices.Equal(got, want) {
				t.Fatalf("the nodes were asked %q, want %q (the source put back where it was)", got, want)
			}
			if err == nil || !strings.Contains(err.Error(), "put back where they ran") || strings.Contains(err.Error(), "lost data") {
				t.Fatalf("finish: %v, want a failure saying echo.1 was put back", err)
			}
			if rec.Containers[0].PagesLost != "" || len(rec.Warnings) != 1 || !strings.Contains(rec.Warnings[0], "put back on node a") {
				t.Errorf("record %+v (warnings %q): want no pages_lost and a warning saying the source was put back", rec.Containers[0], rec.Warnings)
			}
		})
	}
}

// TestStreamToPostCopyDriven: where every node announces post-copy and
// post-copy-migrate, a moving standalone container is marked post-copy in the manifest and
// nothing streams (its set stays on the source, which serves its pages); a moving
// swarm task is refused by name (post-copy moves standalone containers only).
func TestStreamToPostCopyDriven(t *testing.T) {
	all := []string{node.FeatureDumpIntoHeld, node.FeaturePostCopy, node.FeaturePostCopyMigrate}
	for _, tc := range []struct {
		name  string
		task  string
		label bool // asked by the stack's label, not --copy
	}{{name: "Standalone"}, {name: "SwarmTaskRefused", task: "t1"}, {name: "SwarmTaskLabelMigratesDirect", task: "t1", label: true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := &gateHost{workers: []store.Worker{{Node: "a", Address: "a:1", Features: all}, {Node: "b", Address: "b:1", Features: all}}}
			s, err := New(Config{Host: h, Store: store.NewMemory(), Bus: bus.NewNetwork().Connect(),
				NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			pre := &store.Manifest{ID: "m", Containers: []store.Container{{Service: "s", Slot: 1, Node: "a", TaskID: tc.task}, {Service: "s", Slot: 2, Node: "b"}}}
			mode := api.CopyPostCopy
			out, err := s.streamTo(context.Background(), pre, map[string]string{"s.1": "b"}, api.CopyPostCopy, !tc.label, &mode)
			if tc.label {
				if err != nil || mode != api.CopyDirect || out["s.1"] != "b:1" || !pre.Containers[0].Direct || pre.Containers[0].PostCopy {
					t.Fatalf("label post-copy of a swarm task: %v %v, copy %q, manifest %+v; want s.1 direct to b:1", out, err, mode, pre.Containers[0])
				}
				if len(h.events) == 0 || !strings.Contains(h.events[0].Message, "migrating direct") {
					t.Errorf("events %+v, want a warning saying it migrates direct", h.events)
				}
				return
			}
			if tc.task != "" {
				if err == nil || !strings.Contains(err.Error(), "s.1 is a swarm task") || !strings.Contains(err.Error(), "--copy direct") {
					t.Fatalf("post-copy of a swarm task: %v, want refused naming s.1", err)
				}
				return
			}
			if err != nil || len(out) != 0 {
				t.Fatalf("streamTo: %v %v, want nothing streamed", out, err)
			}
			c := pre.Containers[0]
			if !c.PostCopy || c.Direct || c.StreamedTo != "" || pre.Containers[1].PostCopy {
				t.Errorf("manifest %+v, want s.1 (only) post-copy, neither direct nor streamed", pre.Containers)
			}
		})
	}
}

// TestPostCopyRollbackPutsTheSourceBack: when the restore of a post-copy partial
// migration fails, the rollback removes what the restore left on the target (by
// name), stops the source's page server and puts it back on its networks with its
// address and aliases, then releases it (thaw, unlock): it runs on where it was,
// with its state, and the error says so. If its networks cannot be put back, it is
// released all the same and the error says how to reconnect it by hand.
func TestPostCopyRollbackPutsTheSourceBack(t *testing.T) {
	setup := func(t *testing.T) (*Restores, *lazyNodes, *gateHost, *store.Manifest) {
		n := &lazyNodes{}
		h := &gateHost{}
		s, err := New(Config{Host: h, Store: store.NewMemory(), Bus: bus.NewNetwork().Connect(), Nodes: n,
			NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m := &store.Manifest{ID: "m", Stack: "st", Containers: []store.Container{
			{Service: "echo", Slot: 1, Node: "a", ContainerID: "c-echo", PostCopy: true,
				Networks: []string{"st_net"}, IPs: []string{"10.5.0.3"}, Aliases: map[string][]string{"st_net": {"echo"}}},
		}}
		return s, n, h, m
	}
	set := node.SetID("m", "echo.1")
	cause := errors.New("restore on b: criu failed")
	t.Run("Released", func(t *testing.T) {
		s, n, h, m := setup(t)
		err := s.partialRollback(context.Background(), m, map[string]string{"echo.1": "b"}, nil, cause)
		want := []string{"remove b " + ContainerName("m", m.Containers[0]), "reconnect a c-echo " + set + " st_net@10.5.0.3[echo]", "release a c-echo"}
		if got := n.got(); !slices.Equal(got, want) {
			t.Fatalf("the rollback asked the nodes %q, want %q (the source back on its networks, then released)", got, want)
		}
		if err == nil || !strings.Contains(err.Error(), "put back where they were") || !strings.Contains(err.Error(), "criu failed") {
			t.Fatalf("rollback: %v, want the migration's failure saying the containers were put back", err)
		}
		found := false
		for _, e := range h.events {
			found = found || (e.Phase == "put-back" && strings.Contains(e.Message, "echo.1"))
		}
		if !found {
			t.Errorf("no put-back event naming echo.1: %+v", h.events)
		}
	})
	t.Run("NetworksNotBack", func(t *testing.T) {
		s, n, _, m := setup(t)
		n.reconnectErr = errors.New("network st_net not found")
		err := s.partialRollback(context.Background(), m, map[string]string{"echo.1": "b"}, nil, cause)
		if got := n.got(); len(got) == 0 || got[len(got)-1] != "release a c-echo" {
			t.Fatalf("the rollback asked the nodes %q, want the source released even so (nothing left frozen)", got)
		}
		if err == nil || !strings.Contains(err.Error(), "docker network connect --ip 10.5.0.3 st_net c-echo") {
			t.Fatalf("rollback: %v, want an error saying how to put c-echo back on st_net", err)
		}
	})
}

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
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// recoverHost is the Host of a coordinator that recovers what a dead one journaled:
// its stack locks are the store's, every agent is back at once.
type recoverHost struct {
	gateHost
	st store.Store
	mu sync.Mutex
}

func (h *recoverHost) LockStack(ctx context.Context, stackName, op string) (store.Lock, string, error) {
	owner := "new/" + op
	l, err := h.st.LockStack(ctx, stackName, owner, time.Minute)
	return l, owner, err
}

func (h *recoverHost) AwaitAgents(context.Context, map[string]bool) {}

func (h *recoverHost) DropSets(_ context.Context, sets []SetRef) ([]SetRef, []string) {
	return sets, nil
}

func (h *recoverHost) Event(_ context.Context, e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

// recNodes is lazyNodes that also records unlocks.
type recNodes struct{ *lazyNodes }

func (n recNodes) Unlock(_ context.Context, nodeName string, names []string) error {
	n.note("unlock %s %s", nodeName, strings.Join(names, ","))
	return nil
}

// recRestorer records the restores asked of it ("KEY@NODE").
type recRestorer struct {
	mu  sync.Mutex
	got []string
}

func (r *recRestorer) Restore(_ context.Context, m *store.Manifest, targets map[string]string) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, c := range m.Containers {
		if t, ok := targets[c.Key()]; ok {
			r.got = append(r.got, c.Key()+"@"+t)
			out[c.Key()] = "new-" + c.Key()
		}
	}
	return out, nil
}

// TestRecoverInterruptedPostCopy: a coordinator died during a partial post-copy
// migration (echo.1 post-copy, db.1 plainly dumped, both from node a to node b) at
// each journaled step; the next coordinator's RecoverOperations must keep the
// invariant. Before the stop: both released (the source's page server stopped by its
// agent's release). From the stop until the restore completed (the target's restore
// may have failed, or not be committed): echo.1's source is put back where it was
// (what the restore left on b removed, its page server stopped, its networks given
// back, then released) and never ended, nor restored from its set (which has no
// pages), while db.1 is put back from its set as before. Once the restore completed
// (the post-copy window): the restored containers are unlocked, the recovery waits
// until echo.1's source served its last page and only then ends and removes it and
// drops its set; if its source failed, that is data loss for echo.1: recorded,
// published on the event stream and the progress stream, returned, and the source
// left as it is. Every case deletes the journal and frees the stack's lock.
func TestRecoverInterruptedPostCopy(t *testing.T) {
	set := node.SetID("m", "echo.1")
	const (
		begun = iota
		putBack
		forward
		forwardLost
	)
	for _, tc := range []struct {
		name string
		step string
		want int
	}{
		{"Begun", StepBegun, begun},
		{"Stopping", StepStopping, putBack},
		{"Restoring", StepRestoring, putBack},
		{"Restored", StepRestored, forward},
		{"RestoredSourceLost", StepRestored, forwardLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := store.NewMemory()
			n := &lazyNodes{}
			if tc.want == forwardLost {
				n.lost = map[string]error{set: fmt.Errorf("node a: %w", node.ErrUnavailable)}
			}
			h := &recoverHost{st: st}
			rs := &recRestorer{}
			ev := &events.Recorder{}
			s, err := New(Config{Name: "new", Host: h, Store: st, Bus: bus.NewNetwork().Connect(), Nodes: recNodes{n}, Restorer: rs, Events: ev,
				NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			m := &store.Manifest{ID: "m", Stack: "st", Partial: true, State: store.StateCommitted, Containers: []store.Container{
				{Service: "echo", Slot: 1, Node: "a", ContainerID: "c-echo", PostCopy: true,
					Networks: []string{"st_net"}, IPs: []string{"10.5.0.3"}, Aliases: map[string][]string{"st_net": {"echo"}}},
				{Service: "db", Slot: 1, Node: "a", ContainerID: "c-db"},
			}}
			if err := st.Create(ctx, m); err != nil {
				t.Fatal(err)
			}
			targets := map[string]string{"echo.1": "b", "db.1": "b"}
			op := &store.Operation{ID: "dead/migrate-m", Kind: "migrate", Stack: "st", Snapshot: "m", Parked: "m", Mode: api.ModeExact,
				Step: tc.step, Coordinator: "dead", UpdatedAt: time.Now().UTC()}
			if tc.step != StepBegun {
				op.Targets = targets
			}
			if err := st.PutOperation(ctx, op); err != nil {
				t.Fatal(err)
			}
			// The dead coordinator's lock, still there.
			if _, err := st.LockStack(ctx, "st", op.ID, time.Minute); err != nil {
				t.Fatal(err)
			}
			rerr := s.RecoverOperations(ctx)

			got := n.got()
			echoName, dbName := ContainerName("m", m.Containers[0]), ContainerName("m", m.Containers[1])
			idx := func(call string) int { return slices.Index(got, call) }
			has := func(call string) bool { return idx(call) >= 0 }
			endedEcho := slices.ContainsFunc(got, func(c string) bool {
				return strings.HasPrefix(c, "stop a ") && strings.Contains(c, "c-echo")
			})
			switch tc.want {
			case begun:
				if rerr != nil {
					t.Fatalf("recover: %v", rerr)
				}
				if !has("release a c-echo,c-db") || endedEcho || len(got) != 1 {
					t.Errorf("the nodes were asked %q, want only the release of both (nothing was stopped)", got)
				}
			case putBack:
				if rerr != nil {
					t.Fatalf("recover: %v", rerr)
				}
				if endedEcho || has("remove a c-echo") {
					t.Errorf("the post-copy source was ended or removed by the rollback (it holds the only copy of echo.1's memory): %q", got)
				}
				reconnect := "reconnect a c-echo " + set + " st_net@10.5.0.3[echo]"
				if i, j, k := idx("remove b "+echoName), idx(reconnect), idx("release a c-echo"); i < 0 || j < 0 || k < 0 || !(i < j && j < k) {
					t.Errorf("the nodes were asked %q, want %q, then %q, then %q (echo.1 put back where it was)", got, "remove b "+echoName, reconnect, "release a c-echo")
				}
				// The fake answers as an agent of an older version (no outcomes): db.1's
				// original counts as gone, as such a coordinator assumed, and is
				// replaced from the snapshot.
				if !has("release a c-db") || !has("remove a c-db") || !has("remove b "+dbName) {
					t.Errorf("the nodes were asked %q, want db.1's original released and removed and its interrupted restore on b removed", got)
				}
				if want := []string{"db.1@a"}; !slices.Equal(rs.got, want) {
					t.Errorf("restored %q, want %q (db.1 back on its node; echo.1 never restored from its set without pages)", rs.got, want)
				}
				rec, _ := st.Get(ctx, "m")
				if rec == nil || len(rec.Restores) == 0 || rec.Restores[len(rec.Restores)-1].OK || !strings.Contains(rec.Restores[len(rec.Restores)-1].Error, "put the moved containers back") {
					t.Errorf("the rollback is not recorded on m: %+v", rec)
				}
			case forward:
				if rerr != nil {
					t.Fatalf("recover: %v", rerr)
				}
				wait := "waitlazy a " + set
				if i := idx(wait); i < 0 {
					t.Fatalf("the nodes were asked %q, want a wait for echo.1's last page (%q)", got, wait)
				}
				for _, c := range []string{"stop a c-echo", "remove a c-echo", "drop a " + set} {
					if j := idx(c); j < idx(wait) {
						t.Errorf("the nodes were asked %q: %q missing or before the wait for the last page", got, c)
					}
				}
				if !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "unlock b ") && strings.Contains(c, echoName) }) {
					t.Errorf("the nodes were asked %q, want the restored containers on b unlocked", got)
				}
				if len(rs.got) > 0 {
					t.Errorf("restored %q after a completed restore, want nothing", rs.got)
				}
				rec, _ := st.Get(ctx, "m")
				if rec == nil || rec.Containers[0].PagesArrived.IsZero() || rec.Containers[0].PagesLost != "" || !slices.ContainsFunc(rec.Restores, func(r store.Restore) bool { return r.OK }) {
					t.Errorf("record %+v: want echo.1's pages arrived and the restore recorded OK", rec)
				}
				if !slices.ContainsFunc(h.events, func(e api.Event) bool { return e.Phase == "post-copy-done" && strings.Contains(e.Message, "echo.1") }) {
					t.Errorf("no post-copy-done event for echo.1: %+v", h.events)
				}
			case forwardLost:
				if rerr == nil || !strings.Contains(rerr.Error(), "lost data") || !strings.Contains(rerr.Error(), "echo.1") {
					t.Fatalf("recover with echo.1's source lost: %v, want data loss naming echo.1", rerr)
				}
				if endedEcho || has("remove a c-echo") || has("drop a "+set) {
					t.Errorf("the nodes were asked %q, want echo.1's source left as it is", got)
				}
				rec, _ := st.Get(ctx, "m")
				if rec == nil || rec.Containers[0].PagesLost == "" || rec.Containers[1].PagesLost != "" {
					t.Errorf("record %+v: want echo.1 (only) marked pages_lost", rec)
				}
				evs := ev.Events()
				if !slices.ContainsFunc(evs, func(e events.Event) bool {
					return e.Kind == events.PagesLost && e.Service == "echo" && e.Slot == 1 && e.Node == "a" && e.Target == "b" && e.Snapshot == "m" && e.Reason != ""
				}) {
					t.Errorf("events %+v, want pages-lost for echo.1 (source a, target b)", evs)
				}
				if !slices.ContainsFunc(h.events, func(e api.Event) bool { return e.Phase == "pages-lost" && strings.Contains(e.Message, "echo.1") }) {
					t.Errorf("no pages-lost progress event for echo.1: %+v", h.events)
				}
			}
			if ops, err := st.ListOperations(ctx); err != nil || len(ops) != 0 {
				t.Errorf("journal after the recovery: %+v, %v; want none", ops, err)
			}
			if holder, err := st.LockHolder(ctx, "st"); err != nil || holder != "" {
				t.Errorf("stack lock held by %q after the recovery (%v), want free", holder, err)
			}
		})
	}
}

// TestRecoverPostCopyStopsWithItsContext: a recovery whose coordinator stops (its
// context ends) while it waits for a post-copy container's last page records no data
// loss, leaves the source serving and the operation journaled for the next one.
func TestRecoverPostCopyStopsWithItsContext(t *testing.T) {
	st := store.NewMemory()
	set := node.SetID("m", "echo.1")
	ctx, cancel := context.WithCancel(context.Background())
	n := &lazyNodes{lost: map[string]error{set: context.Canceled}}
	h := &recoverHost{st: st}
	s, err := New(Config{Name: "new", Host: h, Store: st, Bus: bus.NewNetwork().Connect(), Nodes: recNodes{n}, Restorer: &recRestorer{},
		NewID: func(string, time.Time) string { return "x" }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m := &store.Manifest{ID: "m", Stack: "st", Partial: true, State: store.StateCommitted, Containers: []store.Container{
		{Service: "echo", Slot: 1, Node: "a", ContainerID: "c-echo", PostCopy: true}}}
	if err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	op := &store.Operation{ID: "dead/migrate-m", Kind: "migrate", Stack: "st", Snapshot: "m", Parked: "m", Mode: api.ModeExact,
		Step: StepRestored, Coordinator: "dead", Targets: map[string]string{"echo.1": "b"}, UpdatedAt: time.Now().UTC()}
	if err := st.PutOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	n.onWait = cancel // the coordinator stops while it waits
	rerr := s.RecoverOperations(ctx)
	if rerr == nil || !errors.Is(rerr, context.Canceled) {
		t.Fatalf("recover stopped while waiting: %v, want the context's error", rerr)
	}
	bg := context.Background()
	rec, _ := st.Get(bg, "m")
	if rec == nil || rec.Containers[0].PagesLost != "" {
		t.Errorf("record %+v: want no pages_lost (nothing was lost: the coordinator stopped)", rec)
	}
	for _, c := range n.got() {
		if strings.Contains(c, "c-echo") && !strings.HasPrefix(c, "waitlazy") {
			t.Errorf("the nodes were asked %q: want the source left serving", n.got())
		}
	}
	if ops, err := st.ListOperations(bg); err != nil || len(ops) != 1 {
		t.Errorf("journal after a stopped recovery: %+v, %v; want it kept for the next coordinator", ops, err)
	}
}

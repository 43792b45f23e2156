package coordinator

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// The translations a leader had staying containers install survive it (issue 16):
// leader 1 drains slot 1 off n1, and c2 and c3 on n2 translate its old address; its
// etcd client is closed (leader 1 gone). Leader 2, on its own client of the same
// etcd, keeps both records while n2's worker keeps the translations, deletes c3's
// once n2's worker no longer keeps it (its last connection to the old address
// ended), and when c2 moves in turn restores it with the translation in its address
// map (its sockets rewritten to the moved peer's new address), then forgets c2's.
func TestTranslationsSurviveLeaderChange(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	srv, err := embedded.Start(ectx, embedded.Config{DataDir: t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cr := srv.EtcdCredentials()
	ecfg := etcdstore.Config{Endpoints: srv.EtcdEndpoints(), CAFile: cr.CA, CertFile: cr.Cert, KeyFile: cr.Key}
	open := func() *etcdstore.Store {
		st, err := etcdstore.Open(ectx, ecfg)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	net, execs, _ := drainAgents(t)
	n1, n2 := execs["n1"], execs["n2"]
	old, repl := netip.MustParseAddr("10.0.0.2"), "10.0.0.12"
	addr := func(ip string) []stack.NetAddr { return []stack.NetAddr{{Network: "st_net", IP: ip}} }
	t0 := time.Unix(1000, 0)

	// Leader 1: slot 1 leaves n1; c2 and c3 (n2) stay and translate.
	tasks1 := []stack.Task{
		{Service: "st_web", Slot: 1, TaskID: "old", Node: "n1", DesiredState: "shutdown", State: "running", ContainerID: "c1", CreatedAt: t0, Addresses: addr("10.0.0.2")},
		{Service: "st_web", Slot: 1, TaskID: "new", Node: "n2", DesiredState: "running", State: "running", ContainerID: "r1", CreatedAt: t0.Add(time.Minute), Addresses: addr(repl)},
		{Service: "st_web", Slot: 2, TaskID: "two", Node: "n2", DesiredState: "running", State: "running", ContainerID: "c2", CreatedAt: t0, Addresses: addr("10.0.0.3")},
		{Service: "st_web", Slot: 3, TaskID: "three", Node: "n2", DesiredState: "running", State: "running", ContainerID: "c3", CreatedAt: t0, Addresses: addr("10.0.0.4")},
	}
	n2.SetXlateInUse("c2", old, true)
	n2.SetXlateInUse("c3", old, true)
	if err := n2.Lock(ctx, "r1", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := n1.Arm(ctx, "c1", worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate", Stack: "st", Service: "st_web", Slot: 1}); err != nil {
		t.Fatal(err)
	}
	if !n1.HoldStop("c1", "15") {
		t.Fatal("stop of c1 not held")
	}
	st1 := open()
	d1 := &drainController{s: &Service{cfg: Config{Bus: net.Connect(), Store: st1}, log: quiet, ev: &events.Recorder{}}, sw: staticSwarm{tasks: tasks1, avail: "drain"},
		addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
	d1.handle(ctx, node.DrainEvent{Node: "n1", ContainerID: "c1", Name: "c1", Stack: "st", Service: "st_web", Slot: 1, Policy: "migrate",
		Deadline: time.Now().Add(9 * time.Second), What: node.DrainHeld})
	if ts, _ := n2.Translations(ctx); len(ts) != 2 {
		t.Fatalf("translations on n2 after leader 1's drain: %+v, want c2 and c3", ts)
	}
	st1.Close() // leader 1 gone

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	records := func() []store.Translation {
		t.Helper()
		ts, err := st2.ListTranslations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	want := []store.Translation{{Node: "n2", Container: "c2", Old: "10.0.0.2", New: repl, Stack: "st"}, {Node: "n2", Container: "c3", Old: "10.0.0.2", New: repl, Stack: "st"}}
	same := func(got, want []store.Translation) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			g := got[i]
			g.At = time.Time{}
			if g != want[i] {
				return false
			}
		}
		return true
	}
	if got := records(); !same(got, want) {
		t.Fatalf("records leader 2 reads: %+v, want %+v", got, want)
	}
	s2 := &Service{cfg: Config{Bus: net.Connect(), Store: st2, XlateResync: 20 * time.Millisecond}, log: quiet, ev: &events.Recorder{}}
	s2.sweepXlates(ctx, quiet)
	if got := records(); !same(got, want) {
		t.Fatalf("records after a sweep while n2 keeps both translations: %+v, want %+v", got, want)
	}
	// c3's last connection to the old address ends: n2's worker removes the
	// translation, leader 2's sweep the record.
	n2.SetXlateInUse("c3", old, false)
	sctx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); s2.runXlates(sctx) }()
	for deadline := time.Now().Add(10 * time.Second); !same(records(), want[:1]); {
		if time.Now().After(deadline) {
			t.Fatalf("records 10s after c3's translation ended: %+v, want only c2's", records())
		}
		time.Sleep(20 * time.Millisecond) // polling the sweep's outcome
	}
	stopSweep()
	<-swept

	// Leader 2: c2 (slot 2) leaves n2 in turn; its map has the translation.
	tasks2 := []stack.Task{
		{Service: "st_web", Slot: 2, TaskID: "two", Node: "n2", DesiredState: "shutdown", State: "running", ContainerID: "c2", CreatedAt: t0, Addresses: addr("10.0.0.3")},
		{Service: "st_web", Slot: 2, TaskID: "two-b", Node: "n1", DesiredState: "running", State: "running", ContainerID: "r2", CreatedAt: t0.Add(time.Minute), Addresses: addr("10.0.0.13")},
	}
	if err := n1.Lock(ctx, "r2", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := n2.Arm(ctx, "c2", worker.ArmOptions{Budget: 9 * time.Second, Policy: "migrate", Stack: "st", Service: "st_web", Slot: 2}); err != nil {
		t.Fatal(err)
	}
	if !n2.HoldStop("c2", "15") {
		t.Fatal("stop of c2 not held")
	}
	d2 := &drainController{s: s2, sw: staticSwarm{tasks: tasks2, avail: "drain"},
		addr: func(n string) (string, bool) { return n, true }, log: quiet, busy: map[string]bool{}}
	d2.handle(ctx, node.DrainEvent{Node: "n2", ContainerID: "c2", Name: "c2", Stack: "st", Service: "st_web", Slot: 2, Policy: "migrate",
		Deadline: time.Now().Add(9 * time.Second), What: node.DrainHeld})
	placed := n1.PlacedTask("st_web", 2)
	if wantMap := map[string]string{"10.0.0.3": "10.0.0.13", "10.0.0.2": repl}; placed == nil || !reflect.DeepEqual(placed.Addresses, wantMap) {
		t.Fatalf("placed on n1 by leader 2: %+v, want the map %v (its own move and the translation leader 1 installed in c2)", placed, wantMap)
	}
	if got := records(); len(got) != 0 {
		t.Fatalf("records after c2 moved: %+v, want none (its translation stayed behind with its namespace)", got)
	}
}

// A record whose translation the node's worker no longer keeps is stale; one it
// keeps (same container and old address) is not.
func TestStaleTranslations(t *testing.T) {
	recs := []store.Translation{{Node: "n2", Container: "c2", Old: "10.0.0.2", New: "10.0.0.12"},
		{Node: "n2", Container: "c3", Old: "10.0.0.2", New: "10.0.0.12"}, {Node: "n2", Container: "c2", Old: "10.0.0.5", New: "10.0.0.15"}}
	kept := []node.XlateKept{{Container: "c2", Old: "10.0.0.2", New: "10.0.0.12"}, {Container: "c9", Old: "10.0.0.5", New: "10.0.0.15"}}
	got := staleTranslations(recs, kept)
	if len(got) != 2 || got[0].Container != "c3" || got[1].Old != "10.0.0.5" {
		t.Fatalf("stale %+v, want c3's and c2's 10.0.0.5", got)
	}
	if got := staleTranslations(recs[:1], kept); len(got) != 0 {
		t.Fatalf("stale %+v, want none", got)
	}
}

// A peer that moves again: the staying container's record X -> old is re-pointed to
// the newest address, as its worker re-points the rule (xlate.Apply), and old -> new
// is not recorded; a peer back at its first address ends the record.
func TestRecordChainedTranslations(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &Service{cfg: Config{Store: store.NewMemory()}, log: quiet}
	at := time.Unix(1000, 0).UTC()
	s.recordChained(ctx, store.Translation{Node: "n1", Container: "srv", Old: "10.0.0.10", New: "10.0.0.12", Stack: "echo", At: at}, quiet)
	s.recordChained(ctx, store.Translation{Node: "n1", Container: "other", Old: "10.0.0.12", New: "10.0.0.13", Stack: "echo", At: at}, quiet)
	s.recordChained(ctx, store.Translation{Node: "n1", Container: "srv", Old: "10.0.0.12", New: "10.0.0.14", Stack: "echo", At: at}, quiet)
	got := func() map[string]string {
		recs, err := s.cfg.Store.ListTranslations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, r := range recs {
			m[r.Container+" "+r.Old] = r.New
		}
		return m
	}
	want := map[string]string{"srv 10.0.0.10": "10.0.0.14", "other 10.0.0.12": "10.0.0.13"}
	if m := got(); !reflect.DeepEqual(m, want) {
		t.Fatalf("records after the peer moved again: %v, want %v", m, want)
	}
	s.recordChained(ctx, store.Translation{Node: "n1", Container: "srv", Old: "10.0.0.14", New: "10.0.0.10", Stack: "echo", At: at}, quiet)
	delete(want, "srv 10.0.0.10")
	if m := got(); !reflect.DeepEqual(m, want) {
		t.Fatalf("records after the peer came back to its first address: %v, want %v", m, want)
	}
}

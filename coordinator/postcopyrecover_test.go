package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestRecoverInterruptedPostCopyMigration: a coordinator dies (its store stops it)
// during a partial post-copy migration of lab-2's containers (bank_holder.2 and .5,
// dumped post-copy: their sets hold no pages, their frozen sources serve them) at each
// journaled step from the stop on; a coordinator started on the same store and agents
// keeps the invariant:
//   - died before the restore completed (after journaling stopping or restoring, or
//     in the restore's commit before journaling restored): the sources are put back
//     where they were (their page servers stopped, their networks given back, then
//     released: nothing left held) and never ended, nor restored from their sets;
//     nothing stays restored on the targets;
//   - died once the restore completed (the post-copy window): the restored containers
//     are unlocked, and each source is ended only after its node said every page was
//     served, then removed and its set dropped; the record says when the pages
//     arrived;
//   - the same, with bank_holder.2's source failing before its last page: data loss
//     for bank_holder.2 (recorded, a pages-lost event on the event stream), its
//     source left as it is, bank_holder.5 finished.
func TestRecoverInterruptedPostCopyMigration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   string
		before bool
		want   string
	}{
		{"AfterStopping", restore.StepStopping, false, rolledBack},
		{"AfterRestoring", restore.StepRestoring, false, rolledBack},
		{"BeforeRestored", restore.StepRestored, true, rolledBack},
		{"AfterRestored", restore.StepRestored, false, forward},
		{"AfterRestoredSourceLost", restore.StepRestored, false, "lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testRecoverPostCopy(t, tc.step, tc.before, tc.want)
		})
	}
}

func testRecoverPostCopy(t *testing.T, step string, before bool, want string) {
	const id = "pcmig"
	set2, set5 := node.SetID(id, "bank_holder.2"), node.SetID(id, "bank_holder.5")
	// The "page servers" of lab-2: a wait is answered once the test serves the pages
	// (or at once, for a lost source).
	served := make(chan struct{})
	waited := make(chan string, 8)
	lazyWait := func(ctx context.Context, set string) error {
		waited <- set
		if want == "lost" && set == set2 {
			return errors.New("post-copy page server of set " + set + " failed before every page was fetched: criu: connection reset")
		}
		select {
		case <-served:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cs := &crashStore{step: step, before: before, dead: make(chan struct{}), hold: make(chan struct{})}
	e, sw, stopDead := newMigrateEnvWrapped(t, func(m *store.Memory) store.Store { cs.Store = m; return cs }, func(ex *worker.Fake) {
		ex.OldFeatures = append(worker.Features(), node.FeaturePostCopy)
		ex.LazyWait = lazyWait
		// A transfer address with a port: the page server listens on its host.
		send := ex.SendTo
		ex.TransferAddr = ex.Node + ":7000"
		ex.SendTo = func(set, to string) (bool, error) { return send(set, strings.TrimSuffix(to, ":7000")) }
	})
	ctx := context.Background()
	cs.armed.Store(true)
	opCtx, opCancel := context.WithCancel(ctx)
	opDone := make(chan struct{})
	var opErr error
	t.Cleanup(func() { opCancel(); close(cs.hold); <-opDone })
	go func() {
		defer close(opDone)
		_, opErr = e.svc.Migrate(opCtx, api.MigrateRequest{ID: id, Stack: "bank", From: "lab-2", Algorithm: "blocking", Copy: api.CopyPostCopy})
	}()
	select {
	case <-cs.dead:
	case <-opDone:
		t.Fatalf("the post-copy migration ended without reaching step %s: %v", step, opErr)
	case <-time.After(15 * time.Second):
		t.Fatalf("the post-copy migration did not reach step %s within 15 s", step)
	}
	stopDead()
	if m, err := e.store.Get(ctx, id); err != nil || !m.Partial || len(m.Containers) != 2 || !m.Containers[0].PostCopy || !m.Containers[1].PostCopy {
		t.Fatalf("snapshot %s: %+v (%v); want a partial one of bank_holder.2 and .5, both post-copy", id, m, err)
	}
	rec := &events.Recorder{}
	stopNew := e.startMigrateCoordinator(sw, e.store, func(cfg *coordinator.Config) { cfg.Events = rec })
	t.Cleanup(stopNew)
	lab2 := e.execs["lab-2"]
	sources := []string{"ctr2", "ctr5"} // bank_holder.2 and .5 on lab-2
	if want != rolledBack {
		// The recovery waits for the last pages (the sources one after the other);
		// until they are served, no source may be ended.
		want1 := set2
		if want == "lost" {
			want1 = set5 // bank_holder.2's wait failed at once
			select {
			case s := <-waited:
				if s != set2 {
					t.Fatalf("the recovery waited first for %s, want %s", s, set2)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the recovery did not wait for the pages of bank_holder.2 within 20 s")
			}
		}
		select {
		case s := <-waited:
			if s != want1 {
				t.Fatalf("the recovery waited for %s, want %s", s, want1)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the recovery did not wait for the pages of %s within 20 s", want1)
		}
		if st := lab2.Stopped(); slices.ContainsFunc(sources, func(c string) bool { return slices.Contains(st, c) }) {
			t.Fatalf("a source was ended while the recovery waited for pages: stopped %v", st)
		}
		close(served)
	}
	waitForLong(t, 20*time.Second, "the journal recovered", func() bool {
		ops, err := e.store.ListOperations(ctx)
		return err == nil && len(ops) == 0
	})
	if h, err := e.store.LockHolder(ctx, "bank"); err != nil || h != "" {
		t.Errorf("stack lock held by %q after the recovery (%v), want free", h, err)
	}
	if r := sw.Replicas("bank_holder"); r != 5 {
		t.Errorf("bank_holder at %d replicas, want 5 (a partial migration's recovery scales nothing)", r)
	}
	m, err := e.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	held := func() map[string][]string {
		out := map[string][]string{}
		for n, ex := range e.execs {
			for _, h := range ex.Held() {
				if want == "lost" && n == "lab-2" && strings.HasSuffix(h, ":ctr2") {
					continue // the failed source, left as it is
				}
				out[n] = append(out[n], h)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(held()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if h := held(); len(h) > 0 {
		t.Errorf("still held 10 s after the recovery: %v", h)
	}
	stopped := lab2.Stopped()
	switch want {
	case rolledBack:
		for _, c := range sources {
			if slices.Contains(stopped, c) {
				t.Errorf("post-copy source %s was ended by the rollback (it holds the only copy of its memory)", c)
			}
			if _, ok := lab2.Reconnected()[c]; !ok {
				t.Errorf("post-copy source %s was not put back on its networks: %v", c, lab2.Reconnected())
			}
		}
		if c := lab2.LazyCancelled(); !slices.Contains(c, set2) || !slices.Contains(c, set5) {
			t.Errorf("page servers stopped %v, want those of %s and %s (nobody fetches their pages any more)", c, set2, set5)
		}
		for n, ex := range e.execs {
			if r := ex.Restored(); len(r) > 0 {
				t.Errorf("restored on %s after the rollback: %v, want nothing (the sources run on where they were)", n, r)
			}
		}
		if len(m.Restores) == 0 || !strings.Contains(m.Restores[len(m.Restores)-1].Error, "put the moved containers back") {
			t.Errorf("the rollback is not recorded on %s: %+v", id, m.Restores)
		}
	case forward, "lost":
		for i, c := range sources {
			lost := want == "lost" && c == "ctr2"
			if slices.Contains(stopped, c) == lost {
				t.Errorf("source %s ended: %v, want %v (stopped %v)", c, !lost, !lost, stopped)
			}
			set := []string{set2, set5}[i]
			if lab2.HasSet(set) == !lost {
				t.Errorf("set %s on lab-2: kept %v, want %v", set, lab2.HasSet(set), lost)
			}
			mc := m.Containers[slices.IndexFunc(m.Containers, func(x store.Container) bool { return x.ContainerID == c })]
			if lost && (mc.PagesLost == "" || !mc.PagesArrived.IsZero()) || !lost && (mc.PagesLost != "" || mc.PagesArrived.IsZero()) {
				t.Errorf("record of %s: pages_lost %q, pages_arrived %v; want lost=%v", mc.Key(), mc.PagesLost, mc.PagesArrived, lost)
			}
		}
		restored := 0
		for _, n := range []string{"lab-1", "lab-3"} {
			restored += len(e.execs[n].Restored())
		}
		if restored != 2 {
			t.Errorf("%d containers restored on the targets, want bank_holder.2 and .5", restored)
		}
		if !slices.ContainsFunc(m.Restores, func(r store.Restore) bool { return r.OK }) {
			t.Errorf("the completed restore is not recorded on %s: %+v", id, m.Restores)
		}
		evs := rec.Events()
		lostEv := slices.ContainsFunc(evs, func(ev events.Event) bool {
			return ev.Kind == events.PagesLost && ev.Service == "bank_holder" && ev.Slot == 2 && ev.Node == "lab-2" && ev.Snapshot == id
		})
		if lostEv != (want == "lost") {
			t.Errorf("pages-lost event for bank_holder.2: %v, want %v (events %s)", lostEv, want == "lost", fmt.Sprint(evs))
		}
	}
}

// TestMigratePostCopyLostSource: a post-copy migration (no coordinator dies) whose
// source fails before its last page reports data loss for that container: migrate
// fails naming it, the record marks it, the event stream says pages-lost; the other
// container's source is ended once its pages arrived. A source that serves every page
// is ended only then, and migrate succeeds.
func TestMigratePostCopyLostSource(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost=%v", lose), func(t *testing.T) {
			id := "pclive"
			set2 := node.SetID(id, "bank_holder.2")
			rec := &events.Recorder{}
			var mu sync.Mutex
			var stoppedAtWait []string
			var lab2 *worker.Fake
			e, _, _ := newMigrateEnvConfig(t, nil, func(cfg *coordinator.Config) { cfg.Events = rec }, func(ex *worker.Fake) {
				ex.OldFeatures = append(worker.Features(), node.FeaturePostCopy)
				send := ex.SendTo
				ex.TransferAddr = ex.Node + ":7000"
				ex.SendTo = func(set, to string) (bool, error) { return send(set, strings.TrimSuffix(to, ":7000")) }
				if ex.Node == "lab-2" {
					lab2 = ex
				}
				ex.LazyWait = func(_ context.Context, set string) error {
					own := map[string]string{set2: "ctr2", node.SetID(id, "bank_holder.5"): "ctr5"}[set]
					mu.Lock()
					if slices.Contains(lab2.Stopped(), own) {
						stoppedAtWait = append(stoppedAtWait, own)
					}
					mu.Unlock()
					if lose && set == set2 {
						return errors.New("criu: connection reset by peer")
					}
					return nil
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: id, Stack: "bank", From: "lab-2", Algorithm: "blocking", Copy: api.CopyPostCopy})
			mu.Lock()
			if len(stoppedAtWait) > 0 {
				t.Errorf("sources ended before their last page was served: %v", stoppedAtWait)
			}
			mu.Unlock()
			m, gerr := e.store.Get(context.Background(), id)
			if gerr != nil {
				t.Fatal(gerr)
			}
			lostEv := slices.ContainsFunc(rec.Events(), func(ev events.Event) bool {
				return ev.Kind == events.PagesLost && ev.Service == "bank_holder" && ev.Slot == 2 && ev.Node == "lab-2" && ev.Target != "" && strings.Contains(ev.Reason, "connection reset")
			})
			if !lose {
				if err != nil {
					t.Fatalf("migrate: %v", err)
				}
				if st := lab2.Stopped(); !slices.Contains(st, "ctr2") || !slices.Contains(st, "ctr5") || lostEv {
					t.Errorf("stopped %v, pages-lost event %v; want both sources ended, no loss", st, lostEv)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "lost data") || !strings.Contains(err.Error(), "bank_holder.2") {
				t.Fatalf("migrate with bank_holder.2's source lost: %v, want data loss naming it", err)
			}
			if !lostEv {
				t.Errorf("no pages-lost event for bank_holder.2: %v", rec.Events())
			}
			for _, c := range m.Containers {
				if (c.PagesLost != "") != (c.Key() == "bank_holder.2") {
					t.Errorf("record of %s: pages_lost %q", c.Key(), c.PagesLost)
				}
			}
			if st := lab2.Stopped(); slices.Contains(st, "ctr2") || !slices.Contains(st, "ctr5") {
				t.Errorf("stopped %v, want bank_holder.5's source (ctr5) only", st)
			}
		})
	}
}

package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Factory returns a fresh, empty store and a function that stores raw bytes as the
// manifest of an id (to test corrupt manifests).
type Factory func(t *testing.T) (s store.Store, putRaw func(id string, data []byte))

// Run runs the conformance suite.
func Run(t *testing.T, f Factory) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, f) })
	t.Run("UpdateCAS", func(t *testing.T) { testUpdate(t, f) })
	t.Run("Commit", func(t *testing.T) { testCommit(t, f) })
	t.Run("ListDeleteCorrupt", func(t *testing.T) { testList(t, f) })
	t.Run("Lock", func(t *testing.T) { testLock(t, f) })
	t.Run("Workers", func(t *testing.T) { testWorkers(t, f) })
	t.Run("NextEpoch", func(t *testing.T) { testNextEpoch(t, f) })
	t.Run("Policies", func(t *testing.T) { testPolicies(t, f) })
	t.Run("LockHolder", func(t *testing.T) { testLockHolder(t, f) })
	t.Run("ListLocks", func(t *testing.T) { testListLocks(t, f) })
	t.Run("Operations", func(t *testing.T) { testOperations(t, f) })
	t.Run("Translations", func(t *testing.T) { testTranslations(t, f) })
	t.Run("Headers", func(t *testing.T) { testHeaders(t, f) })
	t.Run("LargeManifest", func(t *testing.T) { testLargeManifest(t, f) })
	t.Run("OldRecord", func(t *testing.T) { testOldRecord(t, f) })
}

// Epochs only grow per stack, whatever is deleted, and honour the caller's floor.
func testNextEpoch(t *testing.T, f Factory) {
	s, _ := open(t, f)
	next := func(stack string, atLeast, want uint64) {
		t.Helper()
		got, err := s.NextEpoch(ctx(t), stack, atLeast)
		if err != nil || got != want {
			t.Fatalf("NextEpoch(%s, %d) = %d, %v; want %d", stack, atLeast, got, err, want)
		}
	}
	next("bank", 1, 1)
	next("bank", 1, 2)
	m := Manifest("x", "bank", time.Now())
	m.Epoch = 2
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx(t), "x"); err != nil {
		t.Fatal(err)
	}
	next("bank", 1, 3) // the deleted snapshot's epoch is not handed out again
	next("bank", 10, 10)
	next("bank", 0, 11)
	next("echo", 0, 1) // per stack
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, f Factory) (store.Store, func(string, []byte)) {
	s, raw := f(t)
	t.Cleanup(func() { _ = s.Close() })
	return s, raw
}

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// Manifest returns a preparing manifest of stack with two containers, not durable yet.
func Manifest(id, stack string, created time.Time) *store.Manifest {
	return &store.Manifest{ID: id, Stack: stack, Algorithm: "blocking", State: store.StatePreparing,
		CreatedAt: created.UTC(), UpdatedAt: created.UTC(),
		Containers: []store.Container{
			{Service: stack + "_a", Slot: 1, Node: "n1", ContainerID: "c1", Image: "img", IPs: []string{"10.0.0.2"}},
			{Service: stack + "_b", Slot: 1, Node: "n2", ContainerID: "c2", Image: "img"},
		}}
}

// MakeDurable gives every container of m a durable image set with checksums.
func MakeDurable(m *store.Manifest) {
	for i := range m.Containers {
		m.Containers[i].Images = &store.ImageSet{Node: m.Containers[i].Node, Dir: "/img/" + m.Containers[i].ContainerID,
			Durable: true, Files: []store.File{{Name: "pages-1.img", Size: 4096, SHA256: sum}}}
	}
}

func testCreateGet(t *testing.T, f Factory) {
	s, _ := open(t, f)
	m := Manifest("s1", "bank", time.Now())
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatalf("create: %v", err)
	}
	if m.Revision == 0 {
		t.Fatal("create did not set a revision")
	}
	got, err := s.Get(ctx(t), "s1")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Stack != "bank" || len(got.Containers) != 2 || got.Containers[0].IPs[0] != "10.0.0.2" || got.Revision != m.Revision {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if err := s.Create(ctx(t), Manifest("s1", "bank", time.Now())); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate create: %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx(t), "nope"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("get missing: %v, want ErrNotFound naming the id", err)
	}
}

func testUpdate(t *testing.T, f Factory) {
	s, _ := open(t, f)
	m := Manifest("s1", "bank", time.Now())
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	stale := *m
	m.State = store.StateDumping
	if err := s.Update(ctx(t), m); err != nil {
		t.Fatalf("update: %v", err)
	}
	if m.Revision == stale.Revision {
		t.Fatal("update did not advance the revision")
	}
	stale.Reason = "lost update"
	if err := s.Update(ctx(t), &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, _ := s.Get(ctx(t), "s1")
	if got.State != store.StateDumping || got.Reason != "" {
		t.Fatalf("stored %+v after a refused stale update", got)
	}
	m.State, m.Reason = store.StateAborted, "test"
	if err := s.Update(ctx(t), m); err != nil {
		t.Fatalf("abort: %v", err)
	}
	m.State = store.StateDumping
	if err := s.Update(ctx(t), m); !errors.Is(err, store.ErrFinal) {
		t.Fatalf("update of an aborted snapshot: %v, want ErrFinal", err)
	}
	missing := Manifest("ghost", "bank", time.Now())
	missing.Revision = 1
	if err := s.Update(ctx(t), missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing snapshot: %v, want ErrNotFound", err)
	}
}

func testCommit(t *testing.T, f Factory) {
	s, _ := open(t, f)
	m := Manifest("s1", "bank", time.Now())
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	lock, err := s.LockStack(ctx(t), "bank", "test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx(t))
	if err := s.Commit(ctx(t), m, lock); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("commit without images: %v, want ErrIncomplete", err)
	}
	MakeDurable(m)
	m.Containers[1].Images.Durable = false
	if err := s.Commit(ctx(t), m, lock); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("commit with a non-durable image set: %v, want ErrIncomplete", err)
	}
	m.Containers[1].Images.Durable = true
	m.Containers[1].Images.Files[0].SHA256 = "xyz"
	if err := s.Commit(ctx(t), m, lock); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("commit with a bad checksum: %v, want ErrIncomplete", err)
	}
	if got, _ := s.Get(ctx(t), "s1"); got.State != store.StatePreparing {
		t.Fatalf("refused commits changed the state to %s", got.State)
	}
	MakeDurable(m)
	other, err := s.LockStack(ctx(t), "other", "test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx(t), m, other); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("commit holding another stack's lock: %v, want ErrLockLost", err)
	}
	_ = other.Unlock(ctx(t))
	if err := s.Commit(ctx(t), m, lock); err != nil {
		t.Fatalf("commit: %v", err)
	}
	got, err := s.Get(ctx(t), "s1")
	if err != nil || got.State != store.StateCommitted || m.State != store.StateCommitted {
		t.Fatalf("after commit: %+v %v", got, err)
	}
	m.Restores = append(m.Restores, store.Restore{OK: true, Targets: map[string]string{"bank_a.1": "n3"}},
		store.Restore{OK: true, Mode: "swarm", Targets: map[string]string{"bank_a.1": "n2"},
			Addresses: map[string]string{"10.0.9.5": "10.0.9.17", "fd00::5": "fd00::17"}})
	if err := s.Update(ctx(t), m); err != nil {
		t.Fatalf("recording a restore on a committed snapshot: %v", err)
	}
	if got, err := s.Get(ctx(t), "s1"); err != nil || len(got.Restores) != 2 || got.Restores[0].Mode != "" || got.Restores[0].Addresses != nil ||
		got.Restores[1].Mode != "swarm" || got.Restores[1].Addresses["10.0.9.5"] != "10.0.9.17" || got.Restores[1].Addresses["fd00::5"] != "fd00::17" {
		t.Fatalf("restore records read back: %+v %v; want an exact record without addresses and a swarm record with its address map", got.Restores, err)
	}
	m.State = store.StateAborted
	if err := s.Update(ctx(t), m); !errors.Is(err, store.ErrFinal) {
		t.Fatalf("changing the state of a committed snapshot: %v, want ErrFinal", err)
	}

	// A lock that was released cannot commit.
	m2 := Manifest("s2", "bank", time.Now())
	MakeDurable(m2)
	if err := s.Create(ctx(t), m2); err != nil {
		t.Fatal(err)
	}
	l2, err := s.LockStack(ctx(t), "bank2", "test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m2.Stack = "bank2"
	_ = l2.Unlock(ctx(t))
	if err := s.Commit(ctx(t), m2, l2); !errors.Is(err, store.ErrLockLost) && !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit after unlock: %v, want ErrLockLost", err)
	}
	if got, _ := s.Get(ctx(t), "s2"); got.State == store.StateCommitted {
		t.Fatal("snapshot committed without the lock")
	}
}

func testList(t *testing.T, f Factory) {
	s, raw := open(t, f)
	base := time.Now()
	for i, id := range []string{"c", "a", "b"} {
		st := "bank"
		if id == "b" {
			st = "echo"
		}
		if err := s.Create(ctx(t), Manifest(id, st, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(all); ids != "c,a,b" {
		t.Fatalf("List all = %s, want c,a,b (oldest first)", ids)
	}
	bank, _ := s.List(ctx(t), "bank")
	if ids := idsOf(bank); ids != "c,a" {
		t.Fatalf("List bank = %s, want c,a", ids)
	}
	raw("broken", []byte("{not json"))
	if _, err := s.Get(ctx(t), "broken"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("get corrupt: %v, want ErrCorrupt", err)
	}
	all, _ = s.List(ctx(t), "")
	found := false
	for _, m := range all {
		if m.ID == "broken" {
			found = m.State == store.StateCorrupt && m.Reason != ""
		}
	}
	if !found {
		t.Fatalf("List does not report the corrupt manifest: %s", idsOf(all))
	}
	if err := s.Delete(ctx(t), "broken"); err != nil {
		t.Fatalf("delete corrupt: %v", err)
	}
	if err := s.Delete(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx(t), "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	all, _ = s.List(ctx(t), "")
	if ids := idsOf(all); ids != "c,b" {
		t.Fatalf("after deletes: %s", ids)
	}
}

func idsOf(ms []*store.Manifest) string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

func testLock(t *testing.T, f Factory) {
	s, _ := open(t, f)
	l, err := s.LockStack(ctx(t), "bank", "coord-1/snap-1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l.Stack() != "bank" {
		t.Fatalf("lock stack %q", l.Stack())
	}
	_, err = s.LockStack(ctx(t), "bank", "coord-1/snap-2", 10*time.Second)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "snap-1") {
		t.Fatalf("second lock: %v, want ErrLocked naming the holder", err)
	}
	other, err := s.LockStack(ctx(t), "echo", "x", 10*time.Second)
	if err != nil {
		t.Fatalf("lock of another stack: %v", err)
	}
	_ = other.Unlock(ctx(t))
	select {
	case <-l.Lost():
		t.Fatal("held lock reports lost")
	default:
	}
	if err := l.Unlock(ctx(t)); err != nil {
		t.Fatal(err)
	}
	l2, err := s.LockStack(ctx(t), "bank", "coord-1/snap-3", 10*time.Second)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	// Breaking someone else's lock does nothing; breaking the named holder's frees it.
	if err := s.BreakLock(ctx(t), "bank", "coord-1/snap-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockStack(ctx(t), "bank", "x", 10*time.Second); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("lock after breaking another owner's lock: %v, want ErrLocked", err)
	}
	if err := s.BreakLock(ctx(t), "bank", "coord-1/snap-3"); err != nil {
		t.Fatal(err)
	}
	l3, err := s.LockStack(ctx(t), "bank", "coord-2/snap-4", 10*time.Second)
	if err != nil {
		t.Fatalf("lock after breaking the dead holder's lock: %v", err)
	}
	_ = l3.Unlock(ctx(t))
	_ = l2.Unlock(ctx(t))
}

func testWorkers(t *testing.T, f Factory) {
	s, _ := open(t, f)
	r2, err := s.RegisterWorker(ctx(t), store.Worker{Node: "n2", Address: "10.0.0.2:7946", CRIUVersion: "4.2"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.RegisterWorker(ctx(t), store.Worker{Node: "n1", Features: []string{"uffd-noncoop"}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := s.ListWorkers(ctx(t))
	if err != nil || len(ws) != 2 || ws[0].Node != "n1" || ws[1].CRIUVersion != "4.2" || ws[0].Features[0] != "uffd-noncoop" {
		t.Fatalf("workers = %+v, %v", ws, err)
	}
	if err := r2(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ws, _ = s.ListWorkers(ctx(t))
	if len(ws) != 1 || ws[0].Node != "n1" {
		t.Fatalf("after release: %+v", ws)
	}
	_ = r1(ctx(t))
	if _, err := s.RegisterWorker(ctx(t), store.Worker{}, time.Second); err == nil {
		t.Fatal("registered a worker without a node name")
	}
}

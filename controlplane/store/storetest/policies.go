package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Policy records are compare-and-swapped, listed by stack and survive as written.
func testPolicies(t *testing.T, f Factory) {
	s, _ := open(t, f)
	if ps, err := s.ListPolicies(ctx(t)); err != nil || len(ps) != 0 {
		t.Fatalf("ListPolicies on an empty store = %v, %v", ps, err)
	}
	next := time.Date(2026, 12, 6, 10, 0, 15, 0, time.UTC)
	p := &store.PolicyState{Stack: "bank", Policy: json.RawMessage(`{"stack":"bank","retain":2}`), Schedule: "@every 15s", Next: next,
		Running: "bank-1", Last: &store.PolicyRun{ID: "bank-0", At: next.Add(-15 * time.Second), Result: "committed", Removed: []string{"bank-x"}}}
	if err := s.PutPolicy(ctx(t), p); err != nil {
		t.Fatalf("PutPolicy new: %v", err)
	}
	if p.Revision == 0 {
		t.Fatal("PutPolicy did not set the revision")
	}
	stale := *p
	stale.Revision = 0
	if err := s.PutPolicy(ctx(t), &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutPolicy over an existing record with revision 0 = %v; want ErrConflict", err)
	}
	rev := p.Revision
	p.Running = ""
	if err := s.PutPolicy(ctx(t), p); err != nil || p.Revision == rev {
		t.Fatalf("PutPolicy update = %v (revision %d, was %d)", err, p.Revision, rev)
	}
	old := *p
	old.Revision = rev
	if err := s.PutPolicy(ctx(t), &old); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutPolicy with an old revision = %v; want ErrConflict", err)
	}
	if err := s.PutPolicy(ctx(t), &store.PolicyState{Stack: "echo", LabelErrors: []string{"service a: bad"}}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.ListPolicies(ctx(t))
	if err != nil || len(ps) != 2 || ps[0].Stack != "bank" || ps[1].Stack != "echo" {
		t.Fatalf("ListPolicies = %v, %v; want bank, echo", ps, err)
	}
	got := ps[0]
	if got.Revision != p.Revision || got.Schedule != "@every 15s" || !got.Next.Equal(next) || got.Running != "" ||
		got.Last == nil || got.Last.ID != "bank-0" || len(got.Last.Removed) != 1 || string(got.Policy) != `{"stack":"bank","retain":2}` {
		t.Fatalf("stored record = %+v; want %+v", got, p)
	}
	if ps[1].LabelErrors[0] != "service a: bad" {
		t.Fatalf("label errors = %v", ps[1].LabelErrors)
	}
	if err := s.DeletePolicy(ctx(t), "bank"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePolicy(ctx(t), "bank"); err != nil {
		t.Fatalf("DeletePolicy of an absent record: %v", err)
	}
	if ps, _ := s.ListPolicies(ctx(t)); len(ps) != 1 || ps[0].Stack != "echo" {
		t.Fatalf("after delete: %v", ps)
	}
	// Deleted, a record is new again (revision 0).
	if err := s.PutPolicy(ctx(t), &store.PolicyState{Stack: "bank"}); err != nil {
		t.Fatalf("PutPolicy after delete: %v", err)
	}
}

// LockHolder names the owner of a held lock, "" otherwise.
func testLockHolder(t *testing.T, f Factory) {
	s, _ := open(t, f)
	if h, err := s.LockHolder(ctx(t), "bank"); err != nil || h != "" {
		t.Fatalf("LockHolder of a free stack = %q, %v", h, err)
	}
	l, err := s.LockStack(ctx(t), "bank", "c1/restore-bank-1-abcdef", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.LockHolder(ctx(t), "bank"); err != nil || h != "c1/restore-bank-1-abcdef" {
		t.Fatalf("LockHolder = %q, %v", h, err)
	}
	if err := l.Unlock(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if h, err := s.LockHolder(ctx(t), "bank"); err != nil || h != "" {
		t.Fatalf("LockHolder after unlock = %q, %v", h, err)
	}
}

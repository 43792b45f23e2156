package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Operation journals are compare-and-swapped, listed by id and survive as written.
func testOperations(t *testing.T, f Factory) {
	s, _ := open(t, f)
	if ops, err := s.ListOperations(ctx(t)); err != nil || len(ops) != 0 {
		t.Fatalf("ListOperations on an empty store = %v, %v", ops, err)
	}
	at := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	op := &store.Operation{ID: "c1/restore-bank-1-abcdef-123456", Kind: "restore", Stack: "bank", Snapshot: "bank-1", Mode: "exact",
		Parked: "bank-2", Step: "begun", Targets: map[string]string{"bank_holder.1": "n2"}, Coordinator: "c1", UpdatedAt: at}
	if err := s.PutOperation(ctx(t), op); err != nil {
		t.Fatalf("PutOperation new: %v", err)
	}
	if op.Revision == 0 {
		t.Fatal("PutOperation did not set the revision")
	}
	stale := *op
	stale.Revision = 0
	if err := s.PutOperation(ctx(t), &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutOperation over an existing record with revision 0 = %v; want ErrConflict", err)
	}
	rev := op.Revision
	op.Step, op.Stopped = "restoring", map[string]uint64{"bank_holder": 5}
	if err := s.PutOperation(ctx(t), op); err != nil || op.Revision == rev {
		t.Fatalf("PutOperation update = %v (revision %d, was %d)", err, op.Revision, rev)
	}
	old := *op
	old.Revision = rev
	if err := s.PutOperation(ctx(t), &old); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutOperation with an old revision = %v; want ErrConflict", err)
	}
	if err := s.PutOperation(ctx(t), &store.Operation{ID: "c1/migrate-bank-3-000000", Kind: "migrate", Stack: "bank", Step: "begun",
		Nodes: []string{"n1", "n2"}, Constraints: []string{"node.hostname==n2"}}); err != nil {
		t.Fatal(err)
	}
	ops, err := s.ListOperations(ctx(t))
	if err != nil || len(ops) != 2 || ops[0].ID != "c1/migrate-bank-3-000000" || ops[1].ID != op.ID {
		t.Fatalf("ListOperations = %v, %v; want the migrate, then the restore", ops, err)
	}
	got := ops[1]
	if got.Revision != op.Revision || got.Step != "restoring" || got.Parked != "bank-2" || got.Targets["bank_holder.1"] != "n2" ||
		got.Stopped["bank_holder"] != 5 || !got.UpdatedAt.Equal(at) || got.Kind != "restore" || got.Mode != "exact" {
		t.Fatalf("stored journal = %+v; want %+v", got, op)
	}
	if ops[0].Nodes[1] != "n2" || ops[0].Constraints[0] != "node.hostname==n2" {
		t.Fatalf("stored journal = %+v", ops[0])
	}
	if err := s.DeleteOperation(ctx(t), op.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOperation(ctx(t), op.ID); err != nil {
		t.Fatalf("DeleteOperation of an absent journal: %v", err)
	}
	if ops, _ := s.ListOperations(ctx(t)); len(ops) != 1 || ops[0].Kind != "migrate" {
		t.Fatalf("after delete: %v", ops)
	}
	// Deleted, a journal is new again (revision 0).
	if err := s.PutOperation(ctx(t), &store.Operation{ID: op.ID, Step: "begun"}); err != nil {
		t.Fatalf("PutOperation after delete: %v", err)
	}
}

package storetest

import (
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// Translation records are replaced by container and old address, listed in order,
// survive as written, and deleted one by one.
func testTranslations(t *testing.T, f Factory) {
	s, _ := open(t, f)
	if ts, err := s.ListTranslations(ctx(t)); err != nil || len(ts) != 0 {
		t.Fatalf("ListTranslations on an empty store = %v, %v", ts, err)
	}
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	put := func(tr store.Translation) {
		t.Helper()
		if err := s.PutTranslation(ctx(t), tr); err != nil {
			t.Fatalf("PutTranslation %+v: %v", tr, err)
		}
	}
	put(store.Translation{Node: "n2", Container: "c5", Old: "10.0.0.2", New: "10.0.0.9", Stack: "bank", At: at})
	put(store.Translation{Node: "n1", Container: "c4", Old: "10.0.0.3", New: "10.0.0.13", Stack: "bank", At: at})
	put(store.Translation{Node: "n1", Container: "c4", Old: "10.0.0.2", New: "10.0.0.9", Stack: "bank", At: at})
	put(store.Translation{Node: "n1", Container: "c4", Old: "fd00::2", New: "fd00::9", At: at})
	// The same container and old address again: replaced.
	put(store.Translation{Node: "n1", Container: "c4", Old: "10.0.0.2", New: "10.0.0.12", Stack: "bank", At: at.Add(time.Second)})
	ts, err := s.ListTranslations(ctx(t))
	if err != nil || len(ts) != 4 {
		t.Fatalf("ListTranslations = %+v, %v; want 4 records", ts, err)
	}
	want := []store.Translation{
		{Node: "n1", Container: "c4", Old: "10.0.0.2", New: "10.0.0.12", Stack: "bank", At: at.Add(time.Second)},
		{Node: "n1", Container: "c4", Old: "10.0.0.3", New: "10.0.0.13", Stack: "bank", At: at},
		{Node: "n1", Container: "c4", Old: "fd00::2", New: "fd00::9", At: at},
		{Node: "n2", Container: "c5", Old: "10.0.0.2", New: "10.0.0.9", Stack: "bank", At: at},
	}
	for i := range want {
		if g := ts[i]; g.Node != want[i].Node || g.Container != want[i].Container || g.Old != want[i].Old || g.New != want[i].New ||
			g.Stack != want[i].Stack || !g.At.Equal(want[i].At) {
			t.Fatalf("record %d = %+v; want %+v (sorted by container, then old address; the replaced one with its new value)", i, g, want[i])
		}
	}
	if err := s.DeleteTranslation(ctx(t), "c4", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTranslation(ctx(t), "c4", "10.0.0.2"); err != nil {
		t.Fatalf("DeleteTranslation of an absent record: %v", err)
	}
	if ts, _ := s.ListTranslations(ctx(t)); len(ts) != 3 || ts[0].Old != "10.0.0.3" || ts[2].Container != "c5" {
		t.Fatalf("after delete: %+v", ts)
	}
}

package restore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// TestVerifiedAtCommit: only the sets a snapshot wrote itself (named after it) count
// as checked at its commit, and only when its commit's check ran without an error.
func TestVerifiedAtCommit(t *testing.T) {
	m := func(v *store.Verdict) *store.Manifest {
		return &store.Manifest{ID: "mig1", Verdict: v, Containers: []store.Container{
			{Service: "a", Slot: 1, Node: "n1", Images: &store.ImageSet{Node: "n2", Dir: "/sets/" + node.SetID("mig1", "a.1")}},
			{Service: "b", Slot: 1, Node: "n1", Images: &store.ImageSet{Node: "n1", Dir: "/sets/" + node.SetID("old", "b.1")}}, // reused
			{Service: "c", Slot: 1, Node: "n1"}, // no image set
		}}
	}
	ok := &store.Verdict{Consistent: true, CheckedAt: time.Now()}
	for _, tc := range []struct {
		name string
		m    *store.Manifest
		want string
	}{
		{"checked", m(ok), "map[a.1:true]"},
		{"no verdict", m(nil), "map[]"},
		{"check failed", m(&store.Verdict{Error: "a.1: no agent", CheckedAt: time.Now()}), "map[]"},
		{"nil", nil, "map[]"},
	} {
		if got := fmt.Sprint(restore.VerifiedAtCommit(tc.m)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

package coord

import (
	"errors"
	"fmt"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

func TestValidate(t *testing.T) {
	c := func(id string, peers ...string) protocol.Container {
		return protocol.Container{ID: id, Node: "n", Peers: peers}
	}
	bad := map[string][]protocol.Container{
		"empty":      nil,
		"no id":      {c("")},
		"duplicate":  {c("a"), c("a")},
		"unknown":    {c("a", "x")},
		"self":       {c("a", "a")},
		"asymmetric": {c("a", "b"), c("b")},
	}
	for name, cs := range bad {
		if _, err := Validate(cs); !errors.Is(err, algorithms.ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
	if idx, err := Validate([]protocol.Container{c("a", "b"), c("b", "a"), c("z")}); err != nil || idx["z"] != 2 {
		t.Errorf("valid set: %v %v", idx, err)
	}
}

func TestRecoverRejectsBadRecords(t *testing.T) {
	var b Base
	b.Init("blocking", algorithms.Config{})
	for name, rec := range map[string]string{
		"not json":        `{`,
		"other algorithm": `{"algorithm":"minimal","epoch":1,"snapshot":"s","phase":"active","containers":[{"id":"a","node":"n"}]}`,
		"bad phase":       `{"algorithm":"blocking","epoch":1,"snapshot":"s","phase":"weird","containers":[{"id":"a","node":"n"}]}`,
	} {
		if _, err := b.Recover([]byte(rec)); !errors.Is(err, algorithms.ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
}

// The record of a complete graph (the coordinator's conservative one) stays linear in
// the number of containers and recovers the same graph; a complete graph that names
// a peer twice is refused.
func TestRecordOfCompleteGraphIsLinear(t *testing.T) {
	const n = 1000
	cs := make([]protocol.Container, n)
	for i := range cs {
		cs[i] = protocol.Container{ID: fmt.Sprintf("c%04d", i), Node: "n"}
	}
	cs = withAllPeers(cs)
	var b Base
	b.Init("blocking", algorithms.Config{})
	b.Epoch, b.Snapshot, b.Containers = 1, "s", cs
	rec := b.Record(PhaseActive, "", nil)
	if len(rec) > 100*n {
		t.Fatalf("record of %d containers is %d bytes: want it linear (< %d)", n, len(rec), 100*n)
	}
	var r Base
	r.Init("blocking", algorithms.Config{})
	if _, err := r.Recover(rec); err != nil {
		t.Fatal(err)
	}
	if len(r.Containers) != n || len(r.Containers[7].Peers) != n-1 || r.Containers[7].Peers[7] != "c0008" || r.Containers[0].Peers[0] != "c0001" {
		t.Fatalf("recovered %d containers, c0007 with %d peers", len(r.Containers), len(r.Containers[7].Peers))
	}
	if acts := r.Ready().Actions; len(acts) != 1 || acts[0].Kind != algorithms.ActAbort {
		t.Fatal("an active record did not recover into an abort")
	}
	bad := `{"algorithm":"blocking","epoch":1,"snapshot":"s","phase":"active","all_peers":true,"containers":[{"id":"a","node":"n","peers":["b"]},{"id":"b","node":"n"}]}`
	if _, err := (&Base{Name: "blocking"}).Recover([]byte(bad)); !errors.Is(err, algorithms.ErrBadRecord) {
		t.Fatalf("all_peers with listed peers: %v, want ErrBadRecord", err)
	}
	dup := []protocol.Container{{ID: "a", Peers: []string{"b", "b"}}, {ID: "b", Peers: []string{"a", "c"}}, {ID: "c", Peers: []string{"a", "b"}}}
	if _, err := Validate(dup); !errors.Is(err, algorithms.ErrBadRequest) {
		t.Fatalf("complete-looking graph with a peer listed twice: %v, want ErrBadRequest", err)
	}
}

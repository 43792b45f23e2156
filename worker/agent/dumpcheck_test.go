package agent

import (
	"slices"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestLocalDumps: the disk-space preflight counts this node's dumps that write their
// memory pages here: plain and streamed ones (a streamed dump keeps its copy), not
// a direct, pre-copy or post-copy one, nor another node's.
func TestLocalDumps(t *testing.T) {
	p := &node.Plan{Containers: []node.Target{
		{ID: "c1", Service: "db", Slot: 1, Node: "n1"},
		{ID: "c2", Service: "db", Slot: 2, Node: "n2"},
		{ID: "c3", Service: "web", Slot: 1, Node: "n1", StreamTo: "n3:7000"},
		{ID: "c4", Service: "web", Slot: 2, Node: "n1", StreamTo: "n3:7000", Direct: true},
		{ID: "c5", Service: "web", Slot: 3, Node: "n1", StreamTo: "n3:7000", PreCopy: true},
		{ID: "c6", Service: "web", Slot: 4, Node: "n1", PostCopy: true},
		{ID: "c7", Node: "n1"},
	}}
	want := []worker.SpaceDump{{Container: "c1", Label: "db.1"}, {Container: "c3", Label: "web.1"}, {Container: "c7", Label: "c7"}}
	if got := localDumps("n1", p); !slices.Equal(got, want) {
		t.Errorf("localDumps = %+v, want %+v", got, want)
	}
}

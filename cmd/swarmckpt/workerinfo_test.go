package main

import (
	"encoding/json"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/members"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestWorkerInfoAnnouncesFeatures: what the agent announces of its node (heartbeats
// and membership metadata) carries the worker's protocol features, post-copy and
// pre-copy only when the node can run them, and fits memberlist's metadata.
func TestWorkerInfoAnnouncesFeatures(t *testing.T) {
	cur := workerInfo(worker.NodeInfo{Node: "lab-1", Kernel: "6.18.44-fc-v1252", PostCopy: worker.Capability{OK: true},
		PreCopy: worker.Capability{Reason: "no soft-dirty"}, Features: worker.Features()})
	if !cur.Has(node.FeatureDumpIntoHeld) || !cur.Has(node.FeaturePostCopy) || cur.Has(node.FeaturePreCopy) {
		t.Fatalf("a current worker with post-copy and without soft-dirty announces %v", cur.Features)
	}
	meta, err := json.Marshal(members.Meta{Node: "a-node-name-of-forty-characters-at-least", Role: "worker",
		WorkerAddr: "[2001:db8::1234:5678]:65535", CRIUVersion: "4.2.1", Features: cur.Features})
	if err != nil || len(meta) > 512 {
		t.Fatalf("the announcement takes %d bytes of memberlist's 512 (%v)", len(meta), err)
	}
	old := workerInfo(worker.NodeInfo{Node: "lab-2"}) // an older worker reports no features
	if old.Has(node.FeatureDumpIntoHeld) {
		t.Fatalf("an older worker announces %v", old.Features)
	}
}

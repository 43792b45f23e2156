package node

import (
	"fmt"
	"time"
)

// Worker describes a node's worker: in heartbeats, and as the coordinator registers it
// (store.Worker is this type).
type Worker struct {
	Node        string   `json:"node"`
	Address     string   `json:"address,omitempty"`
	CRIUVersion string   `json:"criu_version,omitempty"`
	Features    []string `json:"features,omitempty"`
}

// Heartbeat announces a live agent on HeartbeatSubject; Leaving is set on a clean
// shutdown.
type Heartbeat struct {
	Worker  Worker `json:"worker"`
	Leaving bool   `json:"leaving,omitempty"`
	// Started is when this agent started: a coordinator that sees it change knows the
	// node's agent restarted and its roles in running snapshots were lost.
	Started time.Time `json:"started,omitzero"`
}

// Target is one container of a snapshot.
type Target struct {
	ID      string   `json:"id"`
	Service string   `json:"service,omitempty"`
	Slot    int      `json:"slot,omitempty"`
	Node    string   `json:"node"`
	IPs     []string `json:"ips,omitempty"`
	// StreamTo, set by a migration for a container that moves to another node, is the
	// transfer address (host:port) of that node's worker: the dump streams its images
	// there while CRIU writes them (worker DumpTo) and keeps its own copy here, so the
	// restore finds the set already on its target. Empty: a plain dump.
	StreamTo string `json:"stream_to,omitempty"`
	// Direct (with StreamTo, migrate --copy direct): the dump sends the memory pages
	// straight to a page server of that node's worker (worker DumpWith with Into: no
	// copy is written here) and keeps no set here, so the snapshot's only copy of the
	// set is the target's. A failed direct dump fails the dump (there is no local copy
	// to fall back on). An agent that does not know Direct streams as for StreamTo
	// (and keeps its copy), which is safe.
	Direct bool `json:"direct,omitempty"`
	// PostCopy (migrate --copy post-copy, on a parked container only): the dump is the
	// worker's held lazy dump (DumpWith with Lazy on this node's address, port 0, and
	// LeaveRunning): the set here holds every image but the memory pages, which a page
	// server of this node serves to the restore; the container stays frozen after the
	// last page. The restore sends the set as for a plain dump (no StreamTo). Releasing
	// the parked container (an aborted migration) stops its page server first. An
	// agent that does not know PostCopy dumps plainly, which is safe.
	PostCopy bool `json:"post_copy,omitempty"`
	// PreCopy (with StreamTo, migrate --copy pre-copy): the dump takes the pre-dumps
	// OpPreCopy kept on this node for the container's set (worker DumpOptions
	// PreCopied) and writes only the pages dirtied since the last one; the set,
	// pre-dumps included, streams to StreamTo as for a streamed dump. An agent that
	// does not know PreCopy streams a plain dump, which is safe (the pre-dumps are
	// dropped with the set).
	PreCopy bool `json:"pre_copy,omitempty"`
	// CarryVolumes: the dump packs the container's local named volumes into its set
	// (snapshot --carry-volumes; worker.DumpOptions.CarryVolumes).
	CarryVolumes bool `json:"carry_volumes,omitempty"`
	// Deadline, set on lock and freeze actions, is the coordinator's deadline for what
	// the action holds: the worker's watchdog releases the container then. Not on the
	// wire (the agent takes it from the protocol message's envelope).
	Deadline time.Time `json:"-"`
}

// SetKey names t's image set within a snapshot: SERVICE.SLOT, or its id.
func (t Target) SetKey() string {
	if t.Service != "" {
		return fmt.Sprintf("%s.%d", t.Service, t.Slot)
	}
	return t.ID
}

// SetID names the image set of a container (SERVICE.SLOT, or its id) in a snapshot.
func SetID(snapshot, key string) string { return snapshot + "." + key }

// Plan tells a node which containers a snapshot covers (OpPlan): which run where, with
// their addresses, so that peer locks and markers can be routed.
type Plan struct {
	Snapshot   string   `json:"snapshot"`
	Stack      string   `json:"stack"`
	Algorithm  string   `json:"algorithm"`
	Epoch      uint64   `json:"epoch"`
	Containers []Target `json:"containers"`
	// Exit stops the containers after their dump (migration) even when the algorithm
	// asks to leave them running.
	Exit bool `json:"exit,omitempty"`
}

// PlanReply answers a Plan: an error refuses it (nothing was locked).
type PlanReply struct {
	Node string `json:"node"`
	Status
}
